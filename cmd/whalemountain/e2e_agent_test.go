package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestE2EAgentAndX11ForwardingRefused: a client that asks for agent forwarding or X11 on a
// session is told no, no agent or X11 channel is ever opened towards it, and the session
// still works afterwards.
func TestE2EAgentAndX11ForwardingRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	key := newKey(t, "alice")
	s.addKey(t, "alice", key)

	c, err := s.dial(&ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{ssh.PublicKeys(key.Signer)}})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer c.Close()
	// A server that took the requests would open these channels towards the client.
	agentChans := c.HandleChannelOpen("auth-agent@openssh.com")
	x11Chans := c.HandleChannelOpen("x11")
	if agentChans == nil || x11Chans == nil {
		t.Fatal("the client already handles agent or X11 channels")
	}

	x11 := ssh.Marshal(struct {
		SingleConnection bool
		AuthProtocol     string
		AuthCookie       string
		ScreenNumber     uint32
	}{false, "MIT-MAGIC-COOKIE-1", strings.Repeat("ab", 16), 0})

	for _, req := range []struct {
		name    string
		payload []byte
	}{
		{"auth-agent-req@openssh.com", nil},
		{"x11-req", x11},
	} {
		t.Run(req.name, func(t *testing.T) {
			sess, err := c.NewSession()
			if err != nil {
				t.Fatalf("session: %v", err)
			}
			defer sess.Close()
			ok, err := sess.SendRequest(req.name, true, req.payload)
			if err != nil {
				t.Fatalf("%s: %v", req.name, err)
			}
			if ok {
				t.Errorf("%s: the server said yes", req.name)
			}
			// Once more without asking for a reply: nothing comes back, nothing hangs.
			if _, err := sess.SendRequest(req.name, false, req.payload); err != nil {
				t.Fatalf("%s without a reply: %v", req.name, err)
			}
			out, err := sess.Output("whoami --json")
			var who struct{ User string }
			if err == nil {
				err = json.Unmarshal(out, &who)
			}
			if err != nil || who.User != "alice" {
				t.Errorf("the session after %s: %v, %q", req.name, err, out)
			}
		})
	}

	// Nothing was opened towards the client, then or while the sessions ran.
	select {
	case ch := <-agentChans:
		ch.Reject(ssh.Prohibited, "test")
		t.Error("the server opened an agent channel")
	case ch := <-x11Chans:
		ch.Reject(ssh.Prohibited, "test")
		t.Error("the server opened an X11 channel")
	case <-time.After(200 * time.Millisecond):
	}
}
