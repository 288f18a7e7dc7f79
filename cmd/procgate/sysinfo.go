package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"time"
)

// sysInfo is what ps, top and lsof need of the machine: uptime, memory,
// boot time, clock ticks and user names.
type sysInfo struct {
	uptime   float64
	memKiB   uint64
	boot     time.Time
	hz       float64
	pageKiB  uint64
	users    map[uint32]string
	now      time.Time
	extraCol map[string]bool
}

func readSysInfo() *sysInfo {
	si := &sysInfo{hz: 100, pageKiB: uint64(os.Getpagesize() / 1024), users: map[uint32]string{}, now: time.Now()}
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 0 {
			si.uptime, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	si.boot = si.now.Add(-time.Duration(si.uptime * float64(time.Second)))
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				si.memKiB, _ = strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
	}
	if f, err := os.Open("/etc/passwd"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			p := strings.Split(sc.Text(), ":")
			if len(p) > 2 {
				if id, err := strconv.ParseUint(p[2], 10, 32); err == nil {
					if _, dup := si.users[uint32(id)]; !dup {
						si.users[uint32(id)] = p[0]
					}
				}
			}
		}
		f.Close()
	}
	return si
}

func (si *sysInfo) user(uid uint32) string {
	if n, ok := si.users[uid]; ok {
		if len(n) > 8 {
			return n[:7] + "+"
		}
		return n
	}
	return strconv.FormatUint(uint64(uid), 10)
}
