package sshd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"charm.land/ssh"
	gossh "golang.org/x/crypto/ssh"

	"whalemountain/tui/cli"
)

// TestStartupsDecide: up to soft always in; between soft and hard dropped as the dice say
// (rate % at soft, rising); past hard or past the per-source cap always out; releasing makes
// room; a release called twice frees one place.
func TestStartupsDecide(t *testing.T) {
	var logs bytes.Buffer
	s := newStartups(Startups{Soft: 2, Rate: 50, Hard: 4, PerSource: 3}, slog.New(slog.NewTextHandler(&logs, nil)))
	dice := 0
	s.roll = func() int { return dice }
	var held []func()
	admit := func(ip string, want bool) {
		t.Helper()
		rel, ok := s.admit(ip)
		if ok != want {
			t.Fatalf("admit %s with %d in flight and dice %d: %v, want %v", ip, s.inFlight(), dice, ok, want)
		}
		if ok {
			held = append(held, rel)
		}
	}
	admit("10.0.0.1", true)
	admit("10.0.0.2", true)
	dice = 49 // past soft: dropped when the dice fall under 50 %
	admit("10.0.0.3", false)
	dice = 99
	admit("10.0.0.3", true) // 3 in flight: 75 %, and 99 is over it
	dice = 80
	admit("10.0.0.4", true)
	dice = 99
	admit("10.0.0.5", false) // hard: 4 in flight
	held[0]()
	held[0]() // twice: one place
	if n := s.inFlight(); n != 3 {
		t.Errorf("%d in flight after one release, want 3", n)
	}
	// Per source: three from one address, the fourth refused even with room in all.
	s2 := newStartups(Startups{Soft: 10, Rate: 30, Hard: 100, PerSource: 3}, slog.New(slog.DiscardHandler))
	for i := range 4 {
		if _, ok := s2.admit("10.9.9.9"); ok != (i < 3) {
			t.Errorf("connection %d from one address: %v", i+1, ok)
		}
	}
	if _, ok := s2.admit("10.9.9.8"); !ok {
		t.Error("another address is refused")
	}
	if got := strings.Count(logs.String(), "dropping new connections"); got != 1 {
		t.Errorf("a burst of drops logged %d times, want once:\n%s", got, logs.String())
	}
}

// TestFloodDoesNotKeepStudentsOut: one address opens many TCP connections and never speaks;
// a student from another address still logs in, and when the flood's connections go their
// places are free again.
func TestFloodDoesNotKeepStudentsOut(t *testing.T) {
	signer := func() gossh.Signer {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		s, _ := gossh.NewSignerFromKey(priv)
		return s
	}
	hostKey, userKey := signer(), signer()
	srv, err := New(Config{Listen: "127.0.0.1:0", HostSigners: []gossh.Signer{hostKey}, LoginGrace: 5 * time.Second,
		Startups: Startups{Soft: 10, Rate: 30, Hard: 20, PerSource: 5}},
		keyAuth{userKey.PublicKey()}, nil, cli.Deps{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(t.Context()) })

	// The flood comes from 127.0.0.2, the student from 127.0.0.1.
	var flood []net.Conn
	var mu sync.Mutex
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	for range 50 {
		c, err := d.Dial("tcp", l.Addr().String())
		if err != nil {
			continue
		}
		mu.Lock()
		flood = append(flood, c)
		mu.Unlock()
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.startups.inFlight() < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.startups.inFlight(); n != 5 {
		t.Fatalf("%d of the flood's connections hold a place, want the per-source cap 5", n)
	}
	c, err := gossh.Dial("tcp", l.Addr().String(), &gossh.ClientConfig{
		User: "alice", Auth: []gossh.AuthMethod{gossh.PublicKeys(userKey)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("a student could not log in during the flood: %v", err)
	}
	c.Close()
	for _, fc := range flood {
		fc.Close()
	}
	for srv.startups.inFlight() != 0 && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.startups.inFlight(); n != 0 {
		t.Errorf("%d places still held after the flood closed", n)
	}
}

// valueCtx is an ssh.Context that knows only its values.
type valueCtx struct {
	ssh.Context
	vals map[any]any
}

func (c valueCtx) Value(k any) any { return c.vals[k] }

// TestForwardsPerConnectionBounded: a connection holds at most MaxForwards open forwards;
// closing one makes room, closing it twice makes room once.
func TestForwardsPerConnectionBounded(t *testing.T) {
	s := &Server{cfg: Config{MaxForwards: 2}}
	ctx := valueCtx{vals: map[any]any{connKey: &connState{}}}
	d1, ok1 := s.holdForward(ctx)
	_, ok2 := s.holdForward(ctx)
	_, ok3 := s.holdForward(ctx)
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("three forwards with room for two: %v %v %v", ok1, ok2, ok3)
	}
	d1()
	d1()
	if _, ok := s.holdForward(ctx); !ok {
		t.Error("no room after one forward closed")
	}
	if _, ok := s.holdForward(ctx); ok {
		t.Error("closing one forward twice made room twice")
	}
	if _, ok := s.holdForward(valueCtx{vals: map[any]any{}}); ok {
		t.Error("a connection the server does not know got a forward")
	}
}
