package sshd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"whalemountain/backend/audit"
	"whalemountain/tui/cli"
)

// fullDisk stands for the data dir's file system: when full, appends fail with ENOSPC and
// it reports no room.
type fullDisk struct {
	mu   sync.Mutex
	f    *os.File
	full bool
}

func (d *fullDisk) set(full bool) { d.mu.Lock(); d.full = full; d.mu.Unlock() }

func (d *fullDisk) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.full {
		return 0, &os.PathError{Op: "write", Path: d.f.Name(), Err: syscall.ENOSPC}
	}
	return d.f.Write(p)
}

func (d *fullDisk) free() (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.full {
		return 0, nil
	}
	return 1 << 40, nil
}

// TestLoginRefusedWhileAuditCannotBeWritten: with the disk of the audit log full, a login
// is refused with one line rather than let in unrecorded; with room again it is let in.
func TestLoginRefusedWhileAuditCannotBeWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := &fullDisk{f: f}
	log, err := audit.OpenWith(path, audit.Options{Writer: d, Free: d.free})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	host, _ := gossh.NewSignerFromKey(hostPriv)
	_, userPriv, _ := ed25519.GenerateKey(rand.Reader)
	user, _ := gossh.NewSignerFromKey(userPriv)
	srv, err := New(Config{Listen: "127.0.0.1:0", ServerName: "t", HostSigners: []gossh.Signer{host}, MaxSessionsPerUser: 10},
		keyAuth{user.PublicKey()}, log, cli.Deps{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	whoami := func() (string, error) {
		c, err := gossh.Dial("tcp", l.Addr().String(), &gossh.ClientConfig{User: "alice", Auth: []gossh.AuthMethod{gossh.PublicKeys(user)},
			HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
		if err != nil {
			return "", err
		}
		defer c.Close()
		s, err := c.NewSession()
		if err != nil {
			return "", err
		}
		defer s.Close()
		out, err := s.CombinedOutput("whoami")
		return string(out), err
	}
	if out, err := whoami(); err != nil {
		t.Fatalf("whoami with room: %v\n%s", err, out)
	}

	d.set(true)
	out, err := whoami()
	var exit *gossh.ExitError
	const want = "refused: the audit log cannot be written: the disk holding it is full; tell an administrator\n"
	if !errors.As(err, &exit) || exit.ExitStatus() != 1 || out != want {
		t.Errorf("whoami with the disk full: %v, %q; want exit 1 and %q", err, out, want)
	}

	d.set(false)
	if out, err := whoami(); err != nil {
		t.Errorf("whoami with room again: %v\n%s", err, out)
	}
}
