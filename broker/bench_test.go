package broker_test

import "testing"

// BenchmarkThroughput: 64 concurrent clients in this process, a closed
// loop, each request one process × eight items. Reports item reads per
// second and the request latency percentiles seen by the clients, which
// with 64 requests always outstanding are mostly queueing; BenchmarkLoad
// measures latency at a given offered load, with the clients in another
// process.
func BenchmarkThroughput(b *testing.B) {
	requireRoot(b)
	h := startBroker(b, auditPolicy, 20)
	throughput(b, h.socket)
}
