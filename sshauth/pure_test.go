package sshauth

import (
	"strings"
	"testing"
	"time"
)

func TestValidUsername(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"Alice_B-2", true},
		{"a.b", true},
		{"_x", true},
		{"1student", true},
		{strings.Repeat("a", 255), true},
		{strings.Repeat("a", 256), false},
		{"", false},
		{"-alice", false},
		{".alice", false},
		{"alice.", false},
		{"a..b", false},
		{"..", false},
		{"../x", false},
		{"a/b", false},
		{"a\\b", false},
		{"/etc/passwd", false},
		{"alice bob", false},
		{"alice\x00", false},
		{"alice\n", false},
		{"ålice", false},
		{"al%2Fice", false},
		{"al:ice", false},
	} {
		if got := ValidUsername(tc.name); got != tc.ok {
			t.Errorf("ValidUsername(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestAddrKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"1.2.3.4:5678", "1.2.3.4"},
		{"1.2.3.4", "1.2.3.4"},
		{"[::ffff:1.2.3.4]:22", "1.2.3.4"},
		{"[2001:db8:1:2:3:4:5:6]:22", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::9", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:22", "fe80::/64"},
		{"[::1]:2222", "::/64"},
		{"pipe", "pipe"},
		{"host.example:22", "host.example"},
	} {
		if got := addrKey(tc.in); got != tc.want {
			t.Errorf("addrKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseAuthorizedKeys(t *testing.T) {
	k1, l1 := newKey(t)
	k2, l2 := newKey(t)
	k3, l3 := newKey(t)
	text := strings.Join([]string{
		"# alice's keys",
		"",
		"   ",
		l1 + " alice@laptop",
		`restrict,command="echo hi" ` + l2,
		"ssh-ed25519 not-base64!",
		"garbage line",
		"\t" + l3 + "\t",
	}, "\n")
	logs := &logBuf{}
	keys := parseAuthorizedKeys([]byte(text), logs.Logger())
	if len(keys) != 3 || !sameKeys(keys[0], k1) || !sameKeys(keys[1], k2) || !sameKeys(keys[2], k3) {
		t.Fatalf("got %d keys", len(keys))
	}
	if n := logs.Count("skipping unparsable line"); n != 2 {
		t.Errorf("logged %d bad lines, want 2:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "line=6") || !strings.Contains(logs.String(), "line=7") {
		t.Errorf("line numbers missing:\n%s", logs)
	}
}

func TestLimiter(t *testing.T) {
	c := newClock()
	l := newLimiter(3, time.Minute, 5*time.Minute, c.Now)

	// Failures spread wider than the window never add up.
	for range 10 {
		l.fail("a")
		c.Advance(31 * time.Second)
	}
	if l.refused("a") {
		t.Fatal("spread-out failures refused the address")
	}

	l.fail("b")
	l.fail("b")
	if l.refused("b") {
		t.Fatal("refused below the limit")
	}
	l.fail("b")
	if !l.refused("b") {
		t.Fatal("not refused at the limit")
	}
	if l.refused("c") {
		t.Fatal("another address refused")
	}
	c.Advance(5*time.Minute - time.Second)
	l.fail("b") // while refused: does not extend the block
	if !l.refused("b") {
		t.Fatal("block ended early")
	}
	c.Advance(time.Second)
	if l.refused("b") {
		t.Fatal("block did not end")
	}

	// Old entries are forgotten.
	c.Advance(time.Hour)
	l.fail("d")
	l.mu.Lock()
	n := len(l.addrs)
	l.mu.Unlock()
	if n != 1 {
		t.Errorf("%d addresses remembered, want 1", n)
	}

	off := newLimiter(-1, time.Minute, time.Minute, c.Now)
	for range 100 {
		off.fail("x")
	}
	if off.refused("x") {
		t.Error("disabled limiter refused")
	}
}
