package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procgate/procgate/audit"
	"github.com/procgate/procgate/client"
	"github.com/procgate/procgate/policy"
)

// The flood role asks the broker on PROCGATE_TEST_SOCKET for every item
// of every process, again and again for PROCGATE_TEST_FLOOD, and prints
// a floodResult. init runs before TestMain, so the role never runs the
// tests.
func init() {
	if os.Getenv("PROCGATE_TEST_ROLE") == "flood" {
		os.Exit(floodRole())
	}
}

// floodResult is what one flooding caller did.
type floodResult struct {
	Requests, Processes int
}

func floodRole() int {
	d, err := time.ParseDuration(os.Getenv("PROCGATE_TEST_FLOOD"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		return 2
	}
	var items []string
	for _, it := range policy.Items() {
		items = append(items, it.String())
	}
	c := client.New(os.Getenv("PROCGATE_TEST_SOCKET"))
	defer c.Close()
	var res floodResult
	for end := time.Now().Add(d); time.Now().Before(end); {
		err := c.Read(context.Background(), client.Request{All: true, Items: items}, func(*client.Process) error {
			res.Processes++
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "flood:", err)
			return 1
		}
		res.Requests++
	}
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// auditFlood is the audit-flood goal: at most 50 MB of audit log per
// hour (10^6 bytes) under one caller's flood.
const auditFlood = 50e6

// TestPrivsepAuditFlood: one caller that the policy does not single out
// asks the real privilege-separated daemon, with its default audit
// limits, for every item of every process in a loop (thousands of
// audited denials per second, of every target uid and item). The log
// grows by at most 50 MB an hour, extrapolated from its growth over the
// flood, and no decision goes uncounted: events = records of decisions +
// decisions suppressed, in the metrics and in the log (the caller's
// suppressed=N summaries), every line of which `policy why` reads.
func TestPrivsepAuditFlood(t *testing.T) {
	requireRoot(t)
	const flooder, warmup, measured = 43001, time.Second, 5 * time.Second
	metrics := filepath.Join(t.TempDir(), "metrics.sock")
	d := startDaemon(t, testPolicy, "--metrics", metrics)
	for range 3 { // targets of another uid: denials of every item but the plain ones
		spawnTarget(t, uidTarget)
	}
	cmd := exec.Command(clientBinary(), "-test.run=^$")
	cmd.Env = []string{"PROCGATE_TEST_ROLE=flood", "PROCGATE_TEST_SOCKET=" + d.socket, "PROCGATE_TEST_FLOOD=" + (warmup + measured + 500*time.Millisecond).String()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: flooder, Gid: flooder}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(warmup)
	size0, t0 := logSize(t, d.log), time.Now()
	time.Sleep(measured)
	size1, t1 := logSize(t, d.log), time.Now()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("flood: %v: %s", err, stderr.Bytes())
	}
	var res floodResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("flood output %q: %v", stdout.Bytes(), err)
	}
	perHour := float64(size1-size0) / t1.Sub(t0).Seconds() * 3600
	m := scrape(t, metrics)
	events, records, summaries, suppressed := m["procgate_audit_events_total"], m["procgate_audit_records_total"], m["procgate_audit_summaries_total"], m["procgate_audit_suppressed_total"]
	t.Logf("%d requests for every item of %d processes in all; the log grew %d bytes in %v: %.1f MB/hour; %.0f audited decisions, %.0f records (%.0f summaries), %.0f suppressed",
		res.Requests, res.Processes, size1-size0, t1.Sub(t0).Round(time.Millisecond), perHour/1e6, events, records, summaries, suppressed)
	if perHour > auditFlood {
		t.Errorf("the audit log grows %.1f MB/hour under one caller's flood, want ≤ %.0f", perHour/1e6, auditFlood/1e6)
	}
	if events < 1000 || events != records-summaries+suppressed {
		t.Errorf("metrics: %.0f audited decisions, want more than 1,000 and = %.0f records − %.0f summaries + %.0f suppressed", events, records, summaries, suppressed)
	}
	// The daemon drains and writes the last summaries; the log then
	// accounts for every decision.
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t, 30*time.Second); err != nil {
		t.Errorf("front exit: %v", err)
	}
	b, err := os.ReadFile(d.log)
	if err != nil {
		t.Fatal(err)
	}
	var written, summarised, ofFlooder uint64
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		rec, err := policy.ParseAuditLine(line)
		if err != nil {
			t.Fatalf("line %d: %q: %v", i+1, line, err)
		}
		r := &rec.Record
		if !r.IsSummary() {
			written++
			continue
		}
		summarised += r.Suppressed
		if r.Scope == audit.ScopeCaller && r.Subject.UID == flooder {
			ofFlooder += r.Suppressed
		}
	}
	if float64(written+summarised) != events || ofFlooder == 0 || len(b) == 0 || b[len(b)-1] != '\n' {
		t.Errorf("the log has %d records of decisions and summaries of %d more (%d of uid %d's), want %.0f in all, ending with a newline",
			written, summarised, ofFlooder, flooder, events)
	}
}

// TestPrivsepAuditGrants: procgate serve --audit-grants (or audit_grants
// in its --config file) records every item the policy grants a caller
// beyond what the kernel gives it — io of another uid's process —, and
// not the items the kernel gives the caller itself (status); without it,
// such a grant has no record (the policy has no auditallow).
func TestPrivsepAuditGrants(t *testing.T) {
	requireRoot(t)
	tgt := spawnTarget(t, uidTarget).Process.Pid
	cfg := filepath.Join(publicDir(t, "procgate-cfg-"), "serve.yaml")
	if err := os.WriteFile(cfg, []byte("audit_grants: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const repeat = 3
	for _, tc := range []struct {
		name  string
		args  []string
		grant int // records of io grants
	}{
		{"default", nil, 0},
		{"flag", []string{"--audit-grants"}, repeat},
		{"config", []string{"--config", cfg}, repeat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startDaemon(t, testPolicy, tc.args...)
			for _, a := range runClient(t, d.harness, uidMonitor, []uint32{groupRead}, client.Request{PIDs: []int{tgt}, Items: []string{"status", "io"}}, repeat) {
				if a.Value == nil {
					t.Fatalf("a member was refused %s: %+v", a.Item, a)
				}
			}
			d.cmd.Process.Signal(syscall.SIGTERM)
			if err := d.wait(t, 30*time.Second); err != nil {
				t.Errorf("front exit: %v", err)
			}
			b, err := os.ReadFile(d.log)
			if err != nil {
				t.Fatal(err)
			}
			grants := 0
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if line == "" {
					continue
				}
				r, err := audit.Parse(line)
				if err != nil {
					t.Fatalf("%q: %v", line, err)
				}
				if r.Granted && r.Item == "io" && r.Target.PID == tgt && r.Subject.UID == uidMonitor && strings.HasPrefix(r.Rule, "allow@") {
					grants++
					continue
				}
				t.Errorf("unexpected record %q", line)
			}
			if grants != tc.grant {
				t.Errorf("%d records of io grants, want %d:\n%s", grants, tc.grant, b)
			}
		})
	}
}

// logSize returns the size of the file at path.
func logSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// scrape reads the daemon's metrics from the Unix socket at path:
// every sample without labels, by name.
func scrape(t *testing.T, path string) map[string]float64 {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("unix", path)
	}}}
	resp, err := hc.Get("http://procgate/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out
}
