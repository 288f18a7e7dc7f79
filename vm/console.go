package vm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/oracle"
)

// consoleRun is what the VM printed: the protocol lines of one boot
// (package oracle's VM protocol).
type consoleRun struct {
	begin    *oracle.VMBegin
	results  []oracle.VMRes
	end      *oracle.VMEnd
	errors   []string
	bootWall time.Duration // host time from qemu's start to the BEGIN line
	vmWall   time.Duration // host time from qemu's start to its exit
}

// readConsole parses a VM console: the protocol lines (anywhere in a line,
// after stray console output) and nothing else. onBegin is called when the
// BEGIN line arrives; progress, when set, gets one line per finished step.
func readConsole(r io.Reader, progress io.Writer, onBegin func(*consoleRun)) (*consoleRun, error) {
	run := &consoleRun{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	step, stepN, line := "", 0, 0
	flush := func() {
		if progress != nil && step != "" {
			fmt.Fprintf(progress, "verify-vm: step %s: %d cases\n", step, stepN)
		}
	}
	for sc.Scan() {
		line++
		kind, payload := parseLine(sc.Text())
		var err error
		switch kind {
		case oracle.VMBeginPrefix:
			run.begin = &oracle.VMBegin{}
			err = json.Unmarshal(payload, run.begin)
			if onBegin != nil {
				onBegin(run)
			}
			if progress != nil && err == nil {
				fmt.Fprintf(progress, "verify-vm: VM up: %s, LSMs %s, %d cases\n", run.begin.Release, strings.Join(run.begin.LSMs, ","), run.begin.Cases)
			}
		case oracle.VMResPrefix:
			var res oracle.VMRes
			if err = json.Unmarshal(payload, &res); err == nil {
				if res.Step != step {
					flush()
					step, stepN = res.Step, 0
				}
				stepN++
				if res.Result.Error != "" {
					res.Result.Err = errors.New(res.Result.Error)
				}
				run.results = append(run.results, res)
			}
		case oracle.VMEndPrefix:
			flush()
			step = ""
			run.end = &oracle.VMEnd{}
			err = json.Unmarshal(payload, run.end)
		case oracle.VMErrorPrefix:
			var e struct{ Error string }
			_ = json.Unmarshal(payload, &e)
			run.errors = append(run.errors, e.Error)
			if progress != nil {
				fmt.Fprintf(progress, "verify-vm: VM error: %s\n", e.Error)
			}
		}
		if err != nil {
			return run, fmt.Errorf("console line %d: bad %sline: %w", line, kind, err)
		}
	}
	return run, sc.Err()
}

// protocolPrefixes are the console line prefixes of the VM protocol.
var protocolPrefixes = []string{oracle.VMBeginPrefix, oracle.VMResPrefix, oracle.VMEndPrefix, oracle.VMErrorPrefix}

// parseLine finds a protocol prefix in a console line and returns it
// with the JSON after it; kind is "" for other lines.
func parseLine(line string) (kind string, payload []byte) {
	line = strings.TrimRight(line, "\r\n")
	for _, p := range protocolPrefixes {
		if i := strings.Index(line, p); i >= 0 {
			return p, []byte(line[i+len(p):])
		}
	}
	return "", nil
}

// debianVersion matches the package version /proc/version names on a
// Debian kernel: "… #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2025-…)".
// The compiler's version ("gcc-12 (Debian 12.2.0-14) 12.2.0") comes
// earlier in the line, so the last match counts.
var debianVersion = regexp.MustCompile(`Debian (\d+\.\d+(?:\.\d+)?)[-+~][^ ]* \(\d{4}-`)

// release returns the upstream release of the VM's kernel: Debian's
// uname -r ("6.1.0-56-amd64") names the ABI, not the stable release, so
// the package version in /proc/version is preferred.
func release(b *oracle.VMBegin) (kernel.Release, error) {
	if m := debianVersion.FindStringSubmatch(b.Version); m != nil {
		return kernel.ParseRelease(m[1])
	}
	return kernel.ParseRelease(b.Release)
}
