package live

import (
	"sync"

	"github.com/procgate/procgate/procfs"
)

// A TaskCache keeps what ReadPIDs read of each process (its status,
// dump owner, labels and namespace links), so that a later read through
// the same cache pins the process and takes the rest from the cache. It
// is for a caller that reads the same processes over and over while they
// do not change, such as the verifier, which reads its pooled processes
// and their ancestors once per case: a process that changed its
// credentials since it was cached is reported as it was. A process is
// known by its pidfd's inode number ([procfs.Pin.ID]), which no other
// process ever gets; where pidfds have no inode of their own (before
// Linux 6.9), nothing is cached. The namespaces a task names are
// resolved by every read. A TaskCache is safe for concurrent use; the
// zero value is not: use NewTaskCache.
type TaskCache struct {
	mu    sync.Mutex
	tasks map[uint64]*rawTask
}

// NewTaskCache returns an empty cache.
func NewTaskCache() *TaskCache { return &TaskCache{tasks: map[uint64]*rawTask{}} }

// id returns the key of the pinned process, 0 when there is no cache or
// no identity.
func (c *TaskCache) id(p *procfs.Pin) uint64 {
	if c == nil {
		return 0
	}
	return p.ID()
}

// get returns a copy of the process's cached read, nil when there is none.
func (c *TaskCache) get(id uint64) *rawTask {
	if id == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rt := c.tasks[id]
	if rt == nil {
		return nil
	}
	cp := *rt
	return &cp
}

// put keeps a copy of a read, with what it could not read (an
// unreadable namespace link stays unreadable for the process's life).
func (c *TaskCache) put(id uint64, rt *rawTask) {
	if id == 0 || rt == nil {
		return
	}
	cp := *rt
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tasks[id] = &cp
}
