package broker_test

import (
	"context"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/procgate/procgate/client"
)

// BenchmarkThroughput: 64 concurrent clients in this process, a closed
// loop, each request one process × eight items. Reports item reads per
// second and the request latency percentiles seen by the clients, which
// with 64 requests always outstanding are mostly queueing; BenchmarkLoad
// measures latency at a given offered load, with the clients in another
// process.
func BenchmarkThroughput(b *testing.B) {
	requireRoot(b)
	h := startBroker(b, auditPolicy, 20)
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
			c := client.New(h.socket)
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
	_ = os.Getpid
}
