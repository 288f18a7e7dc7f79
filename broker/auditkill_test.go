package broker_test

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procgate/procgate/audit"
	"github.com/procgate/procgate/client"
)

// TestPrivsepAuditReaderKill: 32 clients read status (audited: an
// auditallow rule, no rate limit) and io of three processes from the
// real privilege-separated daemon, and the reader is killed with SIGKILL
// mid-load. Every audited answer a client received has its record in the
// log — a record is written before its answer leaves the reader — and
// the log ends with a newline: no record is cut. Three rounds: the kill
// lands at another moment each time.
func TestPrivsepAuditReaderKill(t *testing.T) {
	requireRoot(t)
	for round := range 3 {
		t.Run(strconv.Itoa(round+1), readerKill)
	}
}

// readerKill is one round of TestPrivsepAuditReaderKill.
func readerKill(t *testing.T) {
	d := startDaemon(t, auditPolicy, "--audit-burst", "0", "--audit-budget", "0")
	if d.reader == 0 {
		t.Fatal("no reader pid in the daemon's log")
	}
	pids := []int{spawnTarget(t, uidTarget).Process.Pid, 1, os.Getpid()}
	var mu sync.Mutex
	received := map[int]int{} // status values received, by pid
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client.New(d.socket)
			defer c.Close()
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := c.Read(context.Background(), client.Request{PIDs: pids, Items: []string{"status", "io"}}, func(p *client.Process) error {
					if _, err := p.Text("status"); err == nil {
						mu.Lock()
						received[p.PID]++
						mu.Unlock()
					}
					return nil
				})
				if err != nil {
					return // the reader is gone
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := syscall.Kill(d.reader, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The front fails closed: its clients get errors, and it exits.
	d.wait(t, 30*time.Second)
	close(stop)
	wg.Wait()
	b, err := os.ReadFile(d.log)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		t.Fatalf("the log (%d bytes) does not end with a newline: %q", len(b), b[max(0, len(b)-120):])
	}
	records := map[int]int{}
	for i, line := range strings.Split(string(bytes.TrimSuffix(b, []byte("\n"))), "\n") {
		r, err := audit.Parse(line)
		if err != nil {
			t.Fatalf("line %d: %q: %v", i+1, line, err)
		}
		if r.IsSummary() || !r.Granted || r.Item != "status" {
			t.Errorf("line %d: %q: want a status grant", i+1, line)
			continue
		}
		records[r.Target.PID]++
	}
	total, lost := 0, 0
	for _, pid := range pids {
		total += received[pid]
		if n := received[pid] - records[pid]; n > 0 {
			lost += n
			t.Errorf("pid %d: clients received %d audited status values, the log has %d records", pid, received[pid], records[pid])
		}
	}
	t.Logf("%d audited values received before the reader's SIGKILL, %d records in the log (%d bytes), %d values without a record", total, len(bytes.Split(b, []byte("\n")))-1, len(b), lost)
	if total == 0 {
		t.Error("no audited value received before the SIGKILL")
	}
}
