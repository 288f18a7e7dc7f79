package gate

import (
	"context"
	"sync"
)

// workerShares holds each caller uid to its share of the gate's workers
// (StallLimits.WorkersPerUID): the requests of a uid that holds its share
// wait for one of its own workers, so the others' requests still find
// workers free however many requests that uid sends, and however long
// its reads wait on the locks of its targets.
type workerShares struct {
	per int

	mu   sync.Mutex
	uids map[uint32]*workerShare
}

// workerShare is one uid's share: its semaphore and the requests holding
// or waiting for it (the share is forgotten when none are left).
type workerShare struct {
	sem  chan struct{}
	refs int
}

func newWorkerShares(per int) *workerShares {
	return &workerShares{per: per, uids: map[uint32]*workerShare{}}
}

// worker takes a worker for a chunk of caller c's request: one of c's
// uid's share, then one of the gate's. It returns the function that
// gives both back, or ctx's error.
func (g *Gate) worker(ctx context.Context, c *Caller) (release func(), err error) {
	ws, uid := g.shares, c.subj.UID
	ws.mu.Lock()
	sh := ws.uids[uid]
	if sh == nil {
		sh = &workerShare{sem: make(chan struct{}, ws.per)}
		ws.uids[uid] = sh
	}
	sh.refs++
	ws.mu.Unlock()
	unref := func() {
		ws.mu.Lock()
		if sh.refs--; sh.refs == 0 {
			delete(ws.uids, uid)
		}
		ws.mu.Unlock()
	}
	select {
	case sh.sem <- struct{}{}:
	case <-ctx.Done():
		unref()
		return nil, ctx.Err()
	}
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		<-sh.sem
		unref()
		return nil, ctx.Err()
	}
	return func() {
		<-g.sem
		<-sh.sem
		unref()
	}, nil
}
