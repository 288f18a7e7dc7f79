package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/procgate/procgate/privsep"
)

// The connections: each caller is identified and admitted as it is
// accepted (or refused at once), and idle connections are closed sooner
// while the pool is under pressure.

// peerConn is an accepted connection with its caller, identified at
// accept time by its socket's peer credentials; the session with the
// backend (a round trip to the reader) is opened by the connection's
// own goroutine at its first request, so that accepting never waits on
// it.
type peerConn struct {
	net.Conn
	s    *Server
	id   privsep.Identity
	adm  privsep.Admission
	open sync.Once
	sess privsep.Session
	err  error
	once sync.Once
}

// session opens the caller's session once.
func (c *peerConn) session() (privsep.Session, error) {
	c.open.Do(func() {
		c.sess, c.err = c.s.be.Open(c.id) // takes c.id.PidFD
		c.id.PidFD = -1
		if c.err != nil {
			c.sess = nil
			if !errors.Is(c.err, privsep.ErrUnavailable) {
				c.err = fmt.Errorf("identify caller: %w", c.err)
			}
		}
	})
	return c.sess, c.err
}

func (c *peerConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.forgetIdle(c)
		c.open.Do(func() { c.id.Close() }) // never opened
		if c.sess != nil {
			c.sess.Close()
		}
		c.s.lim.Release(c.id.UID, c.adm)
	})
	return err
}

// listener identifies each connection's caller as it is accepted and
// admits it, or refuses it at once.
type listener struct {
	net.Listener
	s *Server
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			c.Close()
			continue
		}
		id, err := privsep.PeerOf(uc)
		if err != nil {
			go refuse(c, http.StatusForbidden, "unidentified", err.Error())
			continue
		}
		adm := l.s.lim.Admit(id.UID)
		if adm == privsep.Refused {
			id.Close()
			l.s.be.Reject("too_many_connections")
			go refuse(c, http.StatusTooManyRequests, "too_many_connections", errTooManyConns.Error())
			continue
		}
		return &peerConn{Conn: c, s: l.s, id: id, adm: adm}, nil
	}
}

var errTooManyConns = errors.New("too many connections: this uid holds its share, or every slot it may use is taken")

// refuse answers a connection that is not admitted with one JSON error
// and closes it, without waiting for its request: a refused caller
// holds no slot. Its request, if any, is read and discarded for at most
// a second so that the answer is not lost to a reset.
func refuse(c net.Conn, status int, code, msg string) {
	defer c.Close()
	var e errorBody
	e.Error.Code, e.Error.Message = code, msg
	body, _ := json.Marshal(e)
	body = append(body, '\n')
	head := "HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) +
		"\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n"
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(append([]byte(head), body...)); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

// connState keeps the set of connections waiting for a request (new
// or idle between requests).
func (s *Server) connState(c net.Conn, st http.ConnState) {
	pc, ok := c.(*peerConn)
	if !ok {
		return
	}
	switch st {
	case http.StateNew, http.StateIdle:
		s.idleMu.Lock()
		s.idle[pc] = time.Now()
		s.idleMu.Unlock()
	default:
		s.forgetIdle(pc)
	}
}

func (s *Server) forgetIdle(pc *peerConn) {
	s.idleMu.Lock()
	delete(s.idle, pc)
	s.idleMu.Unlock()
}

// reap closes, while the general pool is under pressure, the
// connections that have waited for a request for pressureIdle or more:
// a caller holding idle connections gives them up sooner when others
// need them.
func (s *Server) reap() {
	t := time.NewTicker(reapEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if !s.lim.Pressure() {
			continue
		}
		var old []*peerConn
		now := time.Now()
		s.idleMu.Lock()
		for pc, since := range s.idle {
			if now.Sub(since) >= pressureIdle {
				old = append(old, pc)
				delete(s.idle, pc)
			}
		}
		s.idleMu.Unlock()
		for _, pc := range old {
			pc.Conn.Close() // its server goroutine then closes it fully
		}
	}
}
