package broker_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/procgate/procgate/client"
)

// BenchmarkThroughputPrivsep runs BenchmarkThroughput's load (64
// concurrent clients, one process × eight items per request) against the
// in-process broker and against the privilege-separated daemon (front +
// reader, built without cgo), in one run, so that items/s and p99 can be
// compared side by side:
//
//	go test -run '^$' -bench ThroughputPrivsep -benchtime 20000x ./broker/
func BenchmarkThroughputPrivsep(b *testing.B) {
	requireRoot(b)
	b.Run("inprocess", func(b *testing.B) {
		h := startBroker(b, auditPolicy, 20)
		throughput(b, h.socket)
	})
	b.Run("privsep", func(b *testing.B) {
		d := startDaemon(b, auditPolicy, "--audit-burst", "20")
		throughput(b, d.socket)
	})
}

func throughput(b *testing.B, socket string) {
	tgt := spawnTarget(b, uidTarget)
	items := []string{"status", "stat", "statm", "io", "limits", "cgroup", "fd_count", "exe"}
	const clients = 64
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := max(b.N/clients, 1)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client.New(socket)
			defer c.Close()
			local := make([]time.Duration, 0, per)
			for range per {
				t0 := time.Now()
				if _, err := c.ReadAll(context.Background(), client.Request{PIDs: []int{tgt.Process.Pid}, Items: items}); err != nil {
					b.Error(err)
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat)*len(items))/el.Seconds(), "items/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
