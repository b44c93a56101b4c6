package main

// The attack suite: one server on the real engine, a victim (alice) with a running
// container, a stopped one, a file in her home, a SIF and tags in her registry namespace,
// and an attacker (mallory) who tries every door: the command line with every way of
// naming alice's objects, scp and sftp, port forwarding, raw SSH channels and requests,
// the per-user Docker API (the real docker CLI and raw HTTP), image removal and pulls
// aimed at the server's own network, images whose labels lie, the login itself, and shell
// metacharacters. Each attempt is one row of a table: the door, the input and what must
// hold. A row that does not hold says so with what came back.
//
// "Not found" must not tell alice's objects from nothing: wherever a row names one of
// alice's objects, mallory's answer is compared byte for byte (stdout, stderr, exit status)
// with her answer for the same form of a name nobody has, after that name is replaced by
// alice's.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"

	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

// minAttackRows is the least the table may hold.
const minAttackRows = 150

// attackRow is one attempt: through which door, by whom, with what input, what must hold.
type attackRow struct {
	Door  string // cli, scp, sftp, forward -L, direct-tcpip, request, login, engine, ...
	Actor string // who sends it: mallory, alice, tanaka, or engine for looks behind the server
	Input string
	Want  string
	// Check makes the attempt and says what came back and whether Want holds.
	Check func(t *testing.T) (got string, ok bool)
}

// attackTable runs rows in the order they were added, a phase at a time.
type attackTable struct {
	rows   []attackRow
	next   int
	failed []string
	seen   [][2]string // input and output of mallory's rows, for the leak check
}

func (tb *attackTable) add(door, actor, input, want string, check func(t *testing.T) (string, bool)) {
	tb.rows = append(tb.rows, attackRow{Door: door, Actor: actor, Input: input, Want: want, Check: check})
}

// run runs the rows added since the last run.
func (tb *attackTable) run(t *testing.T) {
	t.Helper()
	for ; tb.next < len(tb.rows); tb.next++ {
		n, r := tb.next+1, tb.rows[tb.next]
		name := fmt.Sprintf("%03d_%s_%s", n, r.Actor, r.Door)
		ok := t.Run(name, func(t *testing.T) {
			got, held := r.Check(t)
			if r.Actor == "mallory" {
				tb.seen = append(tb.seen, [2]string{r.Input, got})
			}
			if !held {
				t.Errorf("row %d does not hold\n  door:  %s (by %s)\n  input: %s\n  want:  %s\n  got:   %s",
					n, r.Door, r.Actor, r.Input, r.Want, clip(got, 1500))
			}
		})
		if !ok {
			tb.failed = append(tb.failed, fmt.Sprintf("row %d [%s by %s] %s: want %s", n, r.Door, r.Actor, clip(r.Input, 120), r.Want))
		}
	}
}

// clip shortens s for a report.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("... (%d bytes in all)", len(s))
}

func describe(r sshResult) string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
}

// atkQuote joins args into one command line that the server splits back into exactly them.
func atkQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func shownArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = strconv.Quote(a)
	}
	return strings.Join(q, " ")
}

// atkExec runs one command line on c, with a PTY when tty, bounded by timeout. Stdin is
// empty. A command that ends without a status has Code -1.
func atkExec(c *ssh.Client, cmdline string, tty bool, timeout time.Duration) (sshResult, error) {
	sess, err := c.NewSession()
	if err != nil {
		return sshResult{Code: -1}, err
	}
	defer sess.Close()
	if tty {
		if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
			return sshResult{Code: -1}, fmt.Errorf("pty: %w", err)
		}
	}
	var stdout, stderr lockedBuffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmdline) }()
	select {
	case err = <-done:
	case <-time.After(timeout):
		_ = sess.Close()
		return sshResult{Stdout: stdout.String(), Stderr: stderr.String(), Code: -1}, fmt.Errorf("no end within %v", timeout)
	}
	r := sshResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *ssh.ExitError
	var em *ssh.ExitMissingError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitStatus()
	case errors.As(err, &em):
		r.Code = -1
	default:
		r.Code = -1
		return r, err
	}
	return r, nil
}

// sameAsControl compares an attempt on alice's object with the same attempt on one nobody
// has: after each control string is replaced by its counterpart (also as the server may
// show it: escaped, upper or lower case), stdout, stderr and the exit status must be the same
// bytes, and the attempt must have failed.
func sameAsControl(attack, control sshResult, pairs [][2]string, mustFail bool) (string, bool) {
	type pair struct{ from, to string }
	var ps []pair
	for _, p := range pairs {
		from, to := p[0], p[1]
		if from == "" || from == to {
			continue
		}
		inner := func(s string) string { q := strconv.QuoteToASCII(s); return q[1 : len(q)-1] }
		ps = append(ps, pair{from, to}, pair{inner(from), inner(to)}, pair{octal(from), octal(to)},
			pair{strings.ToLower(from), strings.ToLower(to)}, pair{strings.ToUpper(from), strings.ToUpper(to)})
	}
	sort.SliceStable(ps, func(i, j int) bool { return len(ps[i].from) > len(ps[j].from) })
	var args []string
	used := map[string]bool{}
	for _, p := range ps {
		if p.from == "" || used[p.from] {
			continue
		}
		used[p.from] = true
		args = append(args, p.from, p.to)
	}
	rep := strings.NewReplacer(args...)
	want := sshResult{Stdout: rep.Replace(control.Stdout), Stderr: rep.Replace(control.Stderr), Code: control.Code}
	got := "attempt: " + describe(attack) + "\n         for a name nobody has (substituted): " + describe(want)
	if mustFail && attack.Code == 0 {
		return got + "\n         (the attempt succeeded)", false
	}
	return got, attack == want
}

// octal writes bytes outside printable ASCII as \ooo, as OpenSSH's sftp shows them.
func octal(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' {
			fmt.Fprintf(&b, "\\%03o", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// atkObj is one object as mallory may name it: its name and engine ID.
type atkObj struct{ name, id string }

// refForm is one way of writing a reference to an object.
type refForm struct {
	what string
	f    func(o atkObj) string
}

// randomLetters is n letters from a set that no message of the server is made of.
func randomLetters(n int) string {
	const set = "jqvwz"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = set[int(b[i])%len(set)]
	}
	return string(b)
}

// fullwidth writes ASCII letters and digits in their fullwidth forms.
func fullwidth(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r > ' ' && r < 0x7f {
			r += 0xff01 - '!'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// attackFixture is the server, the users and alice's objects.
type attackFixture struct {
	t       *testing.T
	s       *ctrServer
	cfgPath string
	dir     string

	alice, mallory, tanaka, stranger *testKey
	mc, ac, tc                       *ssh.Client // Go SSH connections of mallory, alice and the TA

	img     string
	box     container.InspectResponse // alice's running box as it was before the attacks
	idle    container.InspectResponse // alice's stopped container
	mwork   string                    // mallory's own container's ID
	boxIP   string
	gateway string // alice's network's gateway

	secret, page, logMark string // contents only alice's objects hold
	sifName               string
	sifSum                [32]byte

	ns, nsTag, nsUsedTag string // alice's registry namespace and her tags in it
	tag1, tagUsed        string // their tags

	ctl, ctl4, ctlUser string // names nobody has (3 and 4 letters), and a user nobody is
	ctlID, ctlID2      string // IDs no container has

	forged    string // an image whose labels lie
	forgedID  string
	xID       string // mallory's container of the forged image
	stall     string // while this file exists, SIF builds wait
	sifResult chan sshResult

	fake    *fakeEngine
	fakeSrv *server
	reg     *markerRegistry
	marker  string
	canary  string

	fwdCmd *exec.Cmd
	fwd    map[string]string // -L destination -> local port

	// Shared data (e2e_attack_shared_test.go).
	courseDir, staffDir      string // the datasets' host directories
	staffSecret, groupSecret string // in the TAs' dataset and in alice's group workspace
	groupVol                 string // the engine name of alice's group workspace
}

// TestE2EAttack is the attack suite. Not parallel, for the reason TestE2EContainers gives.
func TestE2EAttack(t *testing.T) {
	needTools(t, "scp", "sftp", "tar2sqfs")
	sshBinary(t)
	start := time.Now()
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)

	f := &attackFixture{t: t, img: img, dir: t.TempDir(), marker: "ENGINE-BODY-" + randomLetters(12)}
	f.setUp(cli)
	tb := &attackTable{}

	// Phase 1: alice's objects are in place; mallory knocks on every door.
	f.loginRows(tb)
	f.lookupRows(tb)
	f.metacharRows(tb)
	f.runFlagRows(tb)
	f.fileRows(tb)
	f.forwardRows(tb)
	f.requestRows(tb)
	f.imageRows(tb)
	f.dockerAPIRows(tb)
	f.gpuRows(tb)
	f.sifRows(tb)
	f.consoleRows(tb)
	f.shareRows(tb)
	f.sharedRows(tb)
	f.fairRows(tb)
	tb.run(t)

	// Phase 2: an image whose labels lie, run and exported by mallory.
	f.forgedRows(tb)
	tb.run(t)

	// Phase 3: the server restarts; nobody's containers go.
	f.restart()
	f.restartRows(tb)
	tb.run(t)

	if len(tb.rows) < minAttackRows {
		t.Errorf("the attack table has %d rows, want at least %d", len(tb.rows), minAttackRows)
	}
	f.verifyUntouched()
	f.checkLeaks(tb)

	byDoor := map[string]int{}
	for _, r := range tb.rows {
		byDoor[r.Door]++
	}
	var counts []string
	for _, d := range slices.Sorted(maps.Keys(byDoor)) {
		counts = append(counts, fmt.Sprintf("%s %d", d, byDoor[d]))
	}
	t.Logf("attack table: %d rows (%s) in %v; %d do not hold", len(tb.rows), strings.Join(counts, ", "),
		time.Since(start).Round(time.Second), len(tb.failed))
	for _, line := range tb.failed {
		t.Logf("  %s", line)
	}
}

// --- set-up ---

func (f *attackFixture) setUp(cli *client.Client) {
	t := f.t
	wrapper, stall := stallingTar2sqfs(t)
	f.stall = stall
	f.ns = "registry.e2e.test:5050"
	prefix := containerPrefix("k")
	top := fmt.Sprintf("tas: [tanaka]\nserver_name: 127.0.0.1\nlimits:\n  failures_per_minute: 1000\n  max_sessions_per_user: 30\n"+
		"  shutdown_grace: 1s\nimages:\n  registry_namespace: %s\n  sif:\n    tar2sqfs: %s\n", f.ns, wrapper)
	top += f.sharedConfig()
	f.s = startContainerServer(t, cli, f.img, prefix, ctrOptions{
		Top:    top,
		Docker: "  quotas:\n    student:\n      max_containers: 12\n      max_running: 10\n",
	})
	for i, a := range f.s.cmd.Args {
		if a == "--config" && i+1 < len(f.s.cmd.Args) {
			f.cfgPath = f.s.cmd.Args[i+1]
		}
	}
	f.alice, f.mallory, f.tanaka, f.stranger = newKey(t, "alice"), newKey(t, "mallory"), newKey(t, "tanaka"), newKey(t, "stranger")
	f.s.addKey(t, "alice", f.alice)
	f.s.addKey(t, "mallory", f.mallory)
	f.s.addKey(t, "tanaka", f.tanaka)

	// alice: a running box serving a page, a stopped container made from her own tag, a
	// file in her home, a SIF, and two tags in her registry namespace.
	f.secret = "ALICE-SECRET-" + randomLetters(16)
	f.page = "ALICE-PAGE-" + randomLetters(16)
	f.logMark = "ALICE-LOG-" + randomLetters(16)
	// Tags of this run's own: test runs on one engine never remove each other's.
	f.tag1, f.tagUsed = "1-"+dockertest.RunID(), "used-"+dockertest.RunID()
	f.nsTag = f.ns + "/alice/proj:" + f.tag1
	f.nsUsedTag = f.ns + "/alice/proj:" + f.tagUsed
	tagImage(t, cli, f.img, f.nsTag)
	tagImage(t, cli, f.img, f.nsUsedTag)
	f.s.mustRun(t, f.alice, "alice", "run", "--name", "box", f.img, "sh", "-c",
		fmt.Sprintf("echo %s; mkdir -p /www && echo %s > /www/index.html && exec httpd -f -p 8080 -h /www", f.logMark, f.page))
	f.s.mustRun(t, f.alice, "alice", "run", "--name", "idle", f.nsUsedTag, "true")
	f.s.waitState(t, f.alice, "alice", "idle", "exited")
	f.s.waitLogs(t, f.alice, "alice", "box", f.logMark)
	f.sharedSetUp()
	secretFile := filepath.Join(f.dir, "secret.txt")
	if err := os.WriteFile(secretFile, []byte(f.secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := f.s.sftpBatch(t, f.alice, "alice", "put "+secretFile+" /home/secret.txt"); r.Code != 0 {
		t.Fatalf("alice's put of her secret: %s", r)
	}
	if r := f.s.run(t, f.alice, "alice", "sif", f.img); r.Code != 0 {
		t.Fatalf("alice's sif: %s", r)
	}
	f.sifName = sifNameOf(t, f.img)
	f.sifSum = sha256File(t, filepath.Join(f.s.DataDir, "sif", "alice", f.sifName))

	f.box = f.s.engineInspect(t, f.s.engineContainer(t, "alice", "box").ID)
	f.idle = f.s.engineInspect(t, f.s.engineContainer(t, "alice", "idle").ID)
	if f.box.NetworkSettings == nil || len(f.box.NetworkSettings.Networks) == 0 {
		t.Fatalf("alice's box has no network: %+v", f.box.NetworkSettings)
	}
	for _, ep := range f.box.NetworkSettings.Networks {
		f.boxIP, f.gateway = ep.IPAddress.String(), ep.Gateway.String()
	}

	// Names and IDs nobody has; the user is as long as "alice", so listings line up.
	f.ctl, f.ctl4, f.ctlUser = randomLetters(3), randomLetters(4), randomLetters(5)
	for f.ctl == "www" { // alice's files are under /www: the control would read as a path
		f.ctl = randomLetters(3)
	}
	f.ctlID, f.ctlID2 = f.unusedID(), f.unusedID()
	f.canary = filepath.Join(f.dir, "canary")

	// mallory: a container of her own, with links in her home toward alice's home, and the
	// same toward the home of a user nobody is.
	f.s.mustRun(t, f.mallory, "mallory", "run", "--name", "mwork", f.img)
	f.mwork = f.s.engineContainer(t, "mallory", "mwork").ID
	var links []string
	for _, u := range []string{"alice", f.ctlUser} {
		links = append(links, fmt.Sprintf("ln -s /home/%s /home/mallory/to%s && ln -s ../%s/secret.txt /home/mallory/rel%s", u, u, u, u))
	}
	links = append(links, "mkdir -p /tmp/www && echo MALLORY-PAGE > /tmp/www/index.html && httpd -p 8080 -h /tmp/www")
	f.s.mustRun(t, f.mallory, "mallory", "exec", "mwork", "--", "sh", "-c", strings.Join(links, " && "))

	// Go SSH connections for the many small attempts.
	f.connect()

	// The outside world: a registry on 127.0.0.1 and a fake engine behind a second server
	// (pulls aimed at private networks must never leave this machine, refused or not).
	f.reg = startMarkerRegistry(t, f.marker)
	f.fake = startFakeEngine(t, f.marker)
	f.fakeSrv = startServer(t, serverOptions{Config: fmt.Sprintf(
		"docker:\n  host: %s\n  name_prefix: %s\nlimits:\n  failures_per_minute: 1000\n", f.fake.Host, containerPrefix("p"))})
	f.fakeSrv.addKey(t, "mallory", f.mallory)
	before := f.fake.pulls()
	r := f.fakeSrv.ssh(t, f.mallory, "mallory", "pull", "busybox:1.36")
	if f.fake.pulls() == before {
		t.Errorf("the fake engine never saw the pull of a public image, so the pull rows prove nothing: %s", r)
	}

	// The forwards mallory will try, in one ssh -N; alice's own forward proves they work.
	f.startForwards()
}

// unusedID is 64 hex digits that no container's ID starts with, even by 4 digits.
func (f *attackFixture) unusedID() string {
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	res, err := f.s.cli.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		f.t.Fatal(err)
	}
	for {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		id := hex.EncodeToString(b)
		p := id[:4]
		if !strings.ContainsAny(p, "0123456789") || !strings.ContainsAny(p, "abcdef") {
			continue
		}
		if !slices.ContainsFunc(res.Items, func(c container.Summary) bool { return strings.HasPrefix(c.ID, p) }) {
			return id
		}
	}
}

func (f *attackFixture) dialAs(key *testKey, user string) *ssh.Client {
	f.t.Helper()
	c, err := f.s.dial(&ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(key.Signer)}})
	if err != nil {
		f.t.Fatalf("%s cannot log in with the Go client: %v", user, err)
	}
	return c
}

func (f *attackFixture) connect() {
	f.mc = f.dialAs(f.mallory, "mallory")
	f.ac = f.dialAs(f.alice, "alice")
	f.tc = f.dialAs(f.tanaka, "tanaka")
	mc, ac, tc := f.mc, f.ac, f.tc
	f.t.Cleanup(func() { mc.Close(); ac.Close(); tc.Close() })
}

// goRun runs args on the Go connection c (mallory's, alice's or the TA's).
func (f *attackFixture) goRun(c *ssh.Client, tty bool, args ...string) sshResult {
	r, err := atkExec(c, atkQuote(args), tty, 20*time.Second)
	if err != nil {
		r.Stderr += "\n[client: " + err.Error() + "]"
	}
	return r
}

// --- rows: the login ---

func (f *attackFixture) loginRows(tb *attackTable) {
	refused := func(user string, auth ...ssh.AuthMethod) func(t *testing.T) (string, bool) {
		return func(t *testing.T) (string, bool) {
			c, err := f.s.dial(&ssh.ClientConfig{User: user, Auth: auth})
			if err == nil {
				out, _ := runOnClient(t, c, "whoami")
				c.Close()
				return "logged in; whoami: " + out, false
			}
			return "refused: " + err.Error(), true
		}
	}
	mk := ssh.PublicKeys(f.mallory.Signer)
	for _, u := range []string{"alice", "Alice", "ALICE", "alice\n", "alice\r\n", "alice\x00", "alice\x00mallory", "mallory\x00alice",
		"alice ", " alice", "\talice", "", strings.Repeat("a", 300), "alice" + strings.Repeat("\x00", 64), "../keys/alice",
		"alice/../mallory", "keys/alice", "alice.keys", "tanaka", "ａｌｉｃｅ", "alice\x1b[31m"} {
		tb.add("login", "mallory", fmt.Sprintf("user %q with mallory's key", u), "authentication refused", refused(u, mk))
	}
	sk := ssh.PublicKeys(f.stranger.Signer)
	tb.add("login", "mallory", `user "mallory" with a key nobody registered`, "authentication refused", refused("mallory", sk))
	tb.add("login", "mallory", `user "alice" with a key nobody registered`, "authentication refused", refused("alice", sk))
	tb.add("login", "mallory", `user "alice", password "alice"`, "authentication refused", refused("alice", ssh.Password("alice")))
	tb.add("login", "mallory", `user "alice", keyboard-interactive`, "authentication refused",
		refused("alice", ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return []string{"alice"}, nil })))
	tb.add("login", "mallory", `user "alice", no authentication ("none")`, "authentication refused", refused("alice"))
	tb.add("login", "mallory", `ssh alice@host with mallory's key (OpenSSH)`, "ssh exits 255, nothing on stdout",
		func(t *testing.T) (string, bool) {
			r := f.s.ssh(t, f.mallory, "alice", "whoami")
			return describe(r), r.Code == 255 && r.Stdout == ""
		})
	tb.add("login", "mallory", `ssh Alice@host with mallory's key (OpenSSH)`, "ssh exits 255, nothing on stdout",
		func(t *testing.T) (string, bool) {
			r := f.s.ssh(t, f.mallory, "Alice", "whoami")
			return describe(r), r.Code == 255 && r.Stdout == ""
		})
}

// --- rows: every verb and every way of naming alice's containers ---

func (f *attackFixture) lookupForms() []refForm {
	p := f.s.prefix
	return []refForm{
		{"name", func(o atkObj) string { return o.name }},
		{"owner/name", func(o atkObj) string { return "alice/" + o.name }},
		{"engine name", func(o atkObj) string { return p + "-alice-" + o.name }},
		{"engine name with /", func(o atkObj) string { return "/" + p + "-alice-" + o.name }},
		{"default-prefix engine name", func(o atkObj) string { return "wm-alice-" + o.name }},
		{"owner/engine name", func(o atkObj) string { return "alice/" + p + "-alice-" + o.name }},
		{"full ID", func(o atkObj) string { return o.id }},
		{"12-digit ID", func(o atkObj) string { return o.id[:12] }},
		{"4-digit ID", func(o atkObj) string { return o.id[:4] }},
		{"owner/ID", func(o atkObj) string { return "alice/" + o.id[:12] }},
		{"upper case", func(o atkObj) string { return strings.ToUpper(o.name) }},
		{"Owner/name", func(o atkObj) string { return "Alice/" + o.name }},
		{"OWNER/name", func(o atkObj) string { return "ALICE/" + o.name }},
		{"Greek omicron", func(o atkObj) string { return o.name[:1] + "ο" + o.name[2:] }},
		{"Cyrillic letter", func(o atkObj) string { return o.name[:2] + "х" + o.name[3:] }},
		{"fullwidth", func(o atkObj) string { return fullwidth(o.name) }},
		{"fullwidth owner/name", func(o atkObj) string { return fullwidth("alice/" + o.name) }},
		{"zero-width space", func(o atkObj) string { return o.name[:1] + "\u200b" + o.name[1:] }},
		{"leading space", func(o atkObj) string { return " " + o.name }},
		{"trailing space", func(o atkObj) string { return o.name + " " }},
		{"tab", func(o atkObj) string { return "\t" + o.name }},
		{"trailing newline", func(o atkObj) string { return o.name + "\n" }},
		{"newline, owner/name", func(o atkObj) string { return o.name + "\nalice/" + o.name }},
		{"trailing NUL", func(o atkObj) string { return o.name + "\x00" }},
		{"leading NUL, owner/name", func(o atkObj) string { return "\x00alice/" + o.name }},
		{"carriage return", func(o atkObj) string { return o.name + "\r" }},
		{"CSI escape", func(o atkObj) string { return o.name + "\x1b[31m" }},
		{"OSC title escape", func(o atkObj) string { return "\x1b]0;pwned\x07" + o.name }},
		{"../name", func(o atkObj) string { return "../" + o.name }},
		{"../owner/name", func(o atkObj) string { return "../alice/" + o.name }},
		{"./name", func(o atkObj) string { return "./" + o.name }},
		{"name/", func(o atkObj) string { return o.name + "/" }},
		{"//name", func(o atkObj) string { return "//" + o.name }},
		{"owner//name", func(o atkObj) string { return "alice//" + o.name }},
		{"owner/./name", func(o atkObj) string { return "alice/./" + o.name }},
		{"mallory/../alice/name", func(o atkObj) string { return "mallory/../alice/" + o.name }},
		{"percent-encoded", func(o atkObj) string { return o.name[:1] + fmt.Sprintf("%%%02x", o.name[1]) + o.name[2:] }},
		{"glob", func(o atkObj) string { return o.name[:2] + "*" }},
		{"very long", func(o atkObj) string { return o.name + strings.Repeat("x", 300) }},
		{"very long owner", func(o atkObj) string { return strings.Repeat("a", 300) + "/" + o.name }},
		{"4 KiB", func(o atkObj) string { return "alice/" + o.name + strings.Repeat("-", 4096) }},
		{"label selector", func(o atkObj) string { return "whalemountain.owner=alice,whalemountain.name=" + o.name }},
		{"label filter", func(o atkObj) string { return "label=whalemountain.name=" + o.name }},
		{"owner:name", func(o atkObj) string { return "alice:" + o.name }},
		{"name@owner", func(o atkObj) string { return o.name + "@alice" }},
		{"owner\\name", func(o atkObj) string { return "alice\\" + o.name }},
	}
}

// lookupVerb is a container verb and how it is typed around a reference.
type lookupVerb struct {
	name string
	tty  bool
	args func(ref string) []string
}

func lookupVerbs() []lookupVerb {
	one := func(verb ...string) func(string) []string {
		return func(ref string) []string { return append(slices.Clone(verb), ref) }
	}
	// Read-only verbs first: should a lifecycle verb get through, the rows after it still
	// ask about a container that is there.
	return []lookupVerb{
		{"inspect", false, one("inspect")},
		{"logs", false, one("logs")},
		{"exec", false, func(ref string) []string { return []string{"exec", ref, "--", "cat", "/www/index.html"} }},
		{"shell", true, one("shell")},
		{"attach", true, one("attach")},
		{"start", false, one("start")},
		{"restart", false, one("restart")},
		{"stop", false, one("stop")},
		{"rm -f", false, one("rm", "-f")},
	}
}

// pairsFor are the substitutions from a control object's forms to a target's.
func pairsFor(form refForm, tgt, ctl atkObj) [][2]string {
	return [][2]string{
		{form.f(ctl), form.f(tgt)}, {ctl.id, tgt.id}, {ctl.id[:12], tgt.id[:12]}, {ctl.id[:4], tgt.id[:4]}, {ctl.name, tgt.name},
	}
}

// equivRow adds a row that makes the attempt on target and on control and wants it to fail
// with the same outcome (sameAsControl), plus extra when given.
func (tb *attackTable) equivRow(door, actor, input, ctlInput string, attempt func(t *testing.T, control bool) sshResult,
	pairs [][2]string, extra func(r sshResult) string) {
	tb.equiv(door, actor, input, ctlInput, true, attempt, pairs, extra)
}

// equiv is equivRow; when mustFail is false the attempt may succeed (on something of the
// attacker's own), as long as it comes out the same as the control.
func (tb *attackTable) equiv(door, actor, input, ctlInput string, mustFail bool, attempt func(t *testing.T, control bool) sshResult,
	pairs [][2]string, extra func(r sshResult) string) {
	want := "fails exactly as for " + ctlInput + " (which nobody has)"
	if !mustFail {
		want = "comes out exactly as for " + ctlInput + " (which nobody has)"
	}
	tb.add(door, actor, input, want, func(t *testing.T) (string, bool) {
		a := attempt(t, false)
		c := attempt(t, true)
		got, ok := sameAsControl(a, c, pairs, mustFail)
		if extra != nil {
			if why := extra(a); why != "" {
				got, ok = got+"\n         "+why, false
			}
		}
		return got, ok
	})
}

func (f *attackFixture) lookupRows(tb *attackTable) {
	box := atkObj{"box", f.box.ID}
	ctl := atkObj{f.ctl, f.ctlID}
	for _, v := range lookupVerbs() {
		for _, form := range f.lookupForms() {
			tb.equivRow("cli "+v.name, "mallory", shownArgs(v.args(form.f(box)))+"   ["+form.what+"]", shownArgs(v.args(form.f(ctl))),
				func(t *testing.T, control bool) sshResult {
					o := box
					if control {
						o = ctl
					}
					return f.goRun(f.mc, v.tty, v.args(form.f(o))...)
				}, pairsFor(form, box, ctl), nil)
		}
	}
	// The stopped container, by the forms that name it exactly.
	idle := atkObj{"idle", f.idle.ID}
	ctl4 := atkObj{f.ctl4, f.ctlID2}
	forms := f.lookupForms()[:8]
	for _, verb := range [][]string{{"inspect"}, {"logs"}, {"start"}, {"rm"}} {
		for _, form := range forms {
			args := func(o atkObj) []string { return append(slices.Clone(verb), form.f(o)) }
			tb.equivRow("cli "+verb[0], "mallory", shownArgs(args(idle))+"   ["+form.what+", stopped]", shownArgs(args(ctl4)),
				func(t *testing.T, control bool) sshResult {
					if control {
						return f.goRun(f.mc, false, args(ctl4)...)
					}
					return f.goRun(f.mc, false, args(idle)...)
				}, pairsFor(form, idle, ctl4), nil)
		}
	}
	// Several names at once.
	multi := func(o atkObj) []string { return []string{"rm", "-f", o.name, "alice/" + o.name, o.id, o.id[:12]} }
	tb.equivRow("cli rm -f", "mallory", shownArgs(multi(box)), shownArgs(multi(ctl)), func(t *testing.T, control bool) sshResult {
		if control {
			return f.goRun(f.mc, false, multi(ctl)...)
		}
		return f.goRun(f.mc, false, multi(box)...)
	}, pairsFor(refForm{"", func(o atkObj) string { return o.name }}, box, ctl), nil)

	// The same through the real OpenSSH client.
	for _, v := range lookupVerbs() {
		for _, form := range f.lookupForms()[:3] {
			tb.equivRow("cli "+v.name+" (OpenSSH)", "mallory", shownArgs(v.args(form.f(box))), shownArgs(v.args(form.f(ctl))),
				func(t *testing.T, control bool) sshResult {
					o := box
					if control {
						o = ctl
					}
					args := v.args(form.f(o))
					if v.tty {
						return f.s.sshFlags(t, f.mallory, "mallory", []string{"-tt"}, atkQuote(args))
					}
					return f.s.run(t, f.mallory, "mallory", args...)
				}, pairsFor(form, box, ctl), nil)
		}
	}
}

// --- rows: shell metacharacters and docker-style flags ---

// aliceIntact says what is wrong with alice's box and idle on the engine, or "".
func (f *attackFixture) aliceIntact(t *testing.T) string {
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	var bad []string
	for _, want := range []container.InspectResponse{f.box, f.idle} {
		res, err := f.s.cli.ContainerInspect(ctx, want.ID, client.ContainerInspectOptions{})
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("alice's %s is gone: %v", want.Name, err))
		case res.Container.State == nil || res.Container.State.Running != want.State.Running ||
			res.Container.State.StartedAt != want.State.StartedAt:
			bad = append(bad, fmt.Sprintf("alice's %s changed state: %+v", want.Name, res.Container.State))
		}
	}
	return strings.Join(bad, "; ")
}

func (f *attackFixture) metacharRows(tb *attackTable) {
	c := f.canary
	for _, line := range []string{
		"ps; touch " + c, "ps && touch " + c, "ps | touch " + c, "ps || touch " + c, "$(touch " + c + ")",
		"`touch " + c + "`", "ps\ntouch " + c, "ps > " + c, "ps $(touch " + c + ")", "whoami;touch " + c,
		"ps; rm -f box", "ps `rm -f box`", "rm -f box; rm -f alice/box", "stop box & stop alice/box",
		"exec mwork -- sh -c 'touch " + c + "'", "help; touch " + c,
	} {
		tb.add("cli (metacharacters)", "mallory", strconv.Quote(line),
			"nothing runs on the server: no "+c+", alice's containers as they were",
			func(t *testing.T) (string, bool) {
				r := f.s.ssh(t, f.mallory, "mallory", line)
				got := describe(r)
				ok := true
				if _, err := os.Stat(c); err == nil {
					got += "; " + c + " was made on the server"
					ok = false
					_ = os.Remove(c)
				}
				if bad := f.aliceIntact(t); bad != "" {
					got += "; " + bad
					ok = false
				}
				return got, ok
			})
	}
}

func (f *attackFixture) runFlagRows(tb *attackTable) {
	home := f.s.prefix + "-home-alice"
	for _, args := range [][]string{
		{"run", "--name", "v1", "-v", home + ":/mnt", f.img},
		{"run", "--name", "v2", "--mount", "type=volume,src=" + home + ",dst=/mnt", f.img},
		{"run", "--name", "v3", "--volumes-from", f.box.ID, f.img},
		{"run", "--name", "v4", "--network", "container:" + f.box.ID, f.img},
		{"run", "--name", "v5", "--privileged", f.img},
		{"run", "--name", "v6", "--pid", "host", f.img},
		{"run", "--name", "v7", "--label", "whalemountain.owner=alice", f.img},
		{"run", "--name", "alice/box2", f.img},
		{"run", "--name", "../alice-box2", f.img},
		{"run", "--name", "v8", "--user", "0", "--cap-add", "SYS_ADMIN", f.img},
	} {
		tb.add("cli run", "mallory", shownArgs(args), "refused, and no container made for anyone",
			func(t *testing.T) (string, bool) {
				before := len(f.s.engineContainers(t, "", ""))
				r := f.s.run(t, f.mallory, "mallory", args...)
				after := len(f.s.engineContainers(t, "", ""))
				got := describe(r)
				if after != before {
					got += fmt.Sprintf("; the server now has %d containers, had %d", after, before)
				}
				return got, r.Code != 0 && after == before
			})
	}
	// What a container of mallory's own can see of alice's.
	for _, cmd := range [][]string{
		{"cat", "/home/alice/secret.txt"},
		{"ls", "/var/run/docker.sock"},
		{"sh", "-c", "ls -la /home; cat /home/*/secret.txt"},
		{"sh", "-c", "wget -q -T 3 -O - http://" + f.boxIP + ":8080/"},
	} {
		args := append([]string{"exec", "mwork", "--"}, cmd...)
		tb.add("cli exec (own container)", "mallory", shownArgs(args), "nothing of alice's: no secret, no socket, no page",
			func(t *testing.T) (string, bool) {
				r := f.s.run(t, f.mallory, "mallory", args...)
				out := r.Stdout + r.Stderr
				bad := strings.Contains(out, f.secret) || strings.Contains(out, f.page) ||
					(cmd[0] == "ls" && r.Code == 0)
				return describe(r), !bad
			})
	}
}

// --- rows: scp and sftp ---

func (f *attackFixture) fileRows(tb *attackTable) {
	local := filepath.Join(f.dir, "got")
	payload := filepath.Join(f.dir, "payload")
	if err := os.WriteFile(payload, []byte("MALLORY-PAYLOAD\n"), 0o600); err != nil {
		f.t.Fatal(err)
	}
	id12, ctl12 := f.box.ID[:12], f.ctlID[:12]
	pairs := [][2]string{{f.ctl, "box"}, {f.ctlUser, "alice"}, {ctl12, id12}, {f.ctlID, f.box.ID},
		{"ctlsif-" + f.ctl + ".sif", f.sifName}}
	with := func(tgt, ctl string) [][2]string { return append([][2]string{{ctl, tgt}}, pairs...) }
	// noFile is what a row must also hold: nothing arrived, nothing of alice's came back.
	noFile := func(r sshResult) string {
		if b, err := os.ReadFile(local); err == nil {
			return fmt.Sprintf("a file arrived: %q", clip(string(b), 200))
		}
		return ""
	}
	paths := []struct{ what, tgt, ctl string }{
		{"container by name", "/containers/box/etc/hostname", "/containers/" + f.ctl + "/etc/hostname"},
		{"container page", "/containers/box/www/index.html", "/containers/" + f.ctl + "/www/index.html"},
		{"owner/name", "/containers/alice/box/etc/hostname", "/containers/alice/" + f.ctl + "/etc/hostname"},
		{"engine name", "/containers/" + f.s.prefix + "-alice-box/etc/hostname", "/containers/" + f.s.prefix + "-alice-" + f.ctl + "/etc/hostname"},
		{"12-digit ID", "/containers/" + id12 + "/etc/hostname", "/containers/" + ctl12 + "/etc/hostname"},
		{"full ID", "/containers/" + f.box.ID + "/etc/hostname", "/containers/" + f.ctlID + "/etc/hostname"},
		{"upper case", "/containers/BOX/etc/hostname", "/containers/" + strings.ToUpper(f.ctl) + "/etc/hostname"},
		{"Greek omicron", "/containers/bοx/etc/hostname", "/containers/" + f.ctl[:1] + "ο" + f.ctl[2:] + "/etc/hostname"},
		{"fullwidth", "/containers/" + fullwidth("box") + "/etc/hostname", "/containers/" + fullwidth(f.ctl) + "/etc/hostname"},
		{"traversal out of a container", "/containers/box/../../home/alice/secret.txt", "/containers/" + f.ctl + "/../../home/" + f.ctlUser + "/secret.txt"},
		{"traversal from her own container", "/containers/mwork/../box/etc/hostname", "/containers/mwork/../" + f.ctl + "/etc/hostname"},
		{"encoded slash", "/containers/box%2fetc%2fhostname", "/containers/" + f.ctl + "%2fetc%2fhostname"},
		{"encoded name", "/containers/b%6fx/etc/hostname", "/containers/" + f.ctl[:1] + fmt.Sprintf("%%%02x", f.ctl[1]) + f.ctl[2:] + "/etc/hostname"},
		{"double slash", "/containers//box/etc/hostname", "/containers//" + f.ctl + "/etc/hostname"},
		{"home traversal", "/home/../alice/secret.txt", "/home/../" + f.ctlUser + "/secret.txt"},
		{"another home", "/home/alice/secret.txt", "/home/" + f.ctlUser + "/secret.txt"},
		{"home double traversal", "/home/../../home/alice/secret.txt", "/home/../../home/" + f.ctlUser + "/secret.txt"},
		{"root traversal", "/../../../var/lib/docker/volumes/" + f.s.prefix + "-home-alice/_data/secret.txt",
			"/../../../var/lib/docker/volumes/" + f.s.prefix + "-home-" + f.ctlUser + "/_data/secret.txt"},
		{"link in her home to alice's home", "/home/toalice/secret.txt", "/home/to" + f.ctlUser + "/secret.txt"},
		{"relative link in her home", "/home/relalice", "/home/rel" + f.ctlUser},
		{"alice's SIF", "/sif/" + f.sifName, "/sif/ctlsif-" + f.ctl + ".sif"},
		{"alice's SIF by owner", "/sif/alice/" + f.sifName, "/sif/alice/ctlsif-" + f.ctl + ".sif"},
		{"alice's SIF by traversal", "/sif/../sif/alice/" + f.sifName, "/sif/../sif/alice/ctlsif-" + f.ctl + ".sif"},
	}
	for _, p := range paths {
		get := func(tool string) func(t *testing.T, control bool) sshResult {
			return func(t *testing.T, control bool) sshResult {
				remote := p.tgt
				if control {
					remote = p.ctl
				}
				_ = os.Remove(local)
				if tool == "sftp" {
					return f.s.sftpBatch(t, f.mallory, "mallory", "get "+remote+" "+local)
				}
				return f.s.fileClient(t, "scp", f.mallory, "mallory@127.0.0.1:"+remote, local)
			}
		}
		tb.equivRow("sftp get", "mallory", p.tgt+"   ["+p.what+"]", p.ctl, get("sftp"), with(p.tgt, p.ctl), noFile)
		if strings.Contains(p.what, "name") || strings.Contains(p.what, "SIF") || strings.Contains(p.what, "traversal") {
			tb.equivRow("scp get", "mallory", p.tgt+"   ["+p.what+"]", p.ctl, get("scp"), with(p.tgt, p.ctl), noFile)
		}
	}
	// The legacy scp protocol runs "scp -f PATH" as a command.
	tb.equivRow("scp -O get", "mallory", "/containers/box/etc/hostname", "/containers/"+f.ctl+"/etc/hostname",
		func(t *testing.T, control bool) sshResult {
			_ = os.Remove(local)
			remote := "/containers/box/etc/hostname"
			if control {
				remote = "/containers/" + f.ctl + "/etc/hostname"
			}
			return f.s.fileClient(t, "scp", f.mallory, "-O", "mallory@127.0.0.1:"+remote, local)
		}, pairs, noFile)

	// Writes.
	puts := []struct{ tool, tgt, ctl string }{
		{"sftp", "/containers/box/tmp/pwned", "/containers/" + f.ctl + "/tmp/pwned"},
		{"sftp", "/containers/alice/box/tmp/pwned", "/containers/alice/" + f.ctl + "/tmp/pwned"},
		{"sftp", "/containers/" + f.box.ID[:12] + "/tmp/pwned", "/containers/" + ctl12 + "/tmp/pwned"},
		{"sftp", "/home/../alice/pwned", "/home/../" + f.ctlUser + "/pwned"},
		{"sftp", "/home/toalice/pwned", "/home/to" + f.ctlUser + "/pwned"},
		{"sftp", "/containers/box/../box/tmp/pwned", "/containers/" + f.ctl + "/../" + f.ctl + "/tmp/pwned"},
		{"scp", "/containers/box/tmp/pwned", "/containers/" + f.ctl + "/tmp/pwned"},
		{"scp", "/home/../alice/pwned", "/home/../" + f.ctlUser + "/pwned"},
		{"scp", "/sif/" + f.sifName, "/sif/ctlsif-" + f.ctl + ".sif"},
	}
	for _, p := range puts {
		tb.equivRow(p.tool+" put", "mallory", p.tgt, p.ctl, func(t *testing.T, control bool) sshResult {
			remote := p.tgt
			if control {
				remote = p.ctl
			}
			if p.tool == "sftp" {
				return f.s.sftpBatch(t, f.mallory, "mallory", "put "+payload+" "+remote)
			}
			return f.s.fileClient(t, "scp", f.mallory, payload, "mallory@127.0.0.1:"+remote)
		}, with(p.tgt, p.ctl), nil)
	}
	// Other changes, and links.
	for _, cmds := range []struct {
		tgt, ctl string
		mayWork  bool // on mallory's own files: the same outcome is all that counts
	}{
		{"mkdir /containers/box/tmp/x", "mkdir /containers/" + f.ctl + "/tmp/x", false},
		{"rm /containers/box/www/index.html", "rm /containers/" + f.ctl + "/www/index.html", false},
		{"rename /containers/box/www/index.html /home/stolen", "rename /containers/" + f.ctl + "/www/index.html /home/stolen", false},
		{"chmod 777 /containers/box/www/index.html", "chmod 777 /containers/" + f.ctl + "/www/index.html", false},
		{"ln -s /containers/box /home/boxlink", "ln -s /containers/" + f.ctl + " /home/boxlink", false},
		{"ln -s /home/../alice /home/alicelink", "ln -s /home/../" + f.ctlUser + " /home/alicelink", false},
		{"ls -l /containers/box/", "ls -l /containers/" + f.ctl + "/", false},
		{"ls -l /containers/alice/box", "ls -l /containers/alice/" + f.ctl, false},
		{"ls -l /home/toalice/", "ls -l /home/to" + f.ctlUser + "/", true},
		{"ls -l /home/toalice/secret.txt", "ls -l /home/to" + f.ctlUser + "/secret.txt", false},
		{"ls -l /home/../alice", "ls -l /home/../" + f.ctlUser, false},
	} {
		tb.equiv("sftp", "mallory", cmds.tgt, cmds.ctl, !cmds.mayWork, func(t *testing.T, control bool) sshResult {
			if control {
				return f.s.sftpBatch(t, f.mallory, "mallory", cmds.ctl)
			}
			return f.s.sftpBatch(t, f.mallory, "mallory", cmds.tgt)
		}, with(cmds.tgt, cmds.ctl), nil)
	}
	// Listings: nothing of alice's in them.
	for _, cmd := range []string{"ls -la /containers", "ls -la /sif", "ls -la /home", "ls -la /", "ls -la /home/toalice"} {
		tb.add("sftp", "mallory", cmd, "lists nothing of alice's (box, idle, her SIF, her file)", func(t *testing.T) (string, bool) {
			r := f.s.sftpBatch(t, f.mallory, "mallory", cmd)
			out := strings.ReplaceAll(r.Stdout, "sftp> "+cmd, "")
			bad := false
			for _, w := range []string{" box\n", " idle\n", f.sifName, "secret.txt", "pwned"} {
				if strings.Contains(out+"\n", w) {
					bad = true
				}
			}
			return describe(r), !bad
		})
	}
}

// --- rows: port forwarding ---

// startForwards starts one `ssh -N` of mallory's with a local forward to each destination
// she will try, and checks that her forward to her own container and alice's to her box
// work (else the rows would prove nothing).
func (f *attackFixture) startForwards() {
	t := f.t
	f.fwd = map[string]string{}
	var flags []string
	for _, dest := range append(f.forwardDests(), "mwork:8080") {
		p := freePort(t)
		f.fwd[dest] = p
		flags = append(flags, "-L", "127.0.0.1:"+p+":"+dest)
	}
	flags = append(flags, "-N", "-o", "ExitOnForwardFailure=no")
	f.fwdCmd = exec.Command(sshBinary(t), f.s.sshArgs(f.mallory, "mallory", flags)...)
	f.fwdCmd.Env = environWithout("SSH_AUTH_SOCK")
	f.fwdCmd.Stderr = &lockedBuffer{}
	if err := f.fwdCmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := f.fwdCmd
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	var last string
	if !poll(pollTimeout, func() bool {
		last = httpThrough(f.fwd["mwork:8080"])
		return strings.Contains(last, "MALLORY-PAGE")
	}) {
		t.Errorf("mallory's ssh -L to her own mwork:8080 does not bring her page (%q), so the forward rows prove little", last)
	}
	own := freePort(t)
	ac := exec.Command(sshBinary(t), f.s.sshArgs(f.alice, "alice", []string{"-N", "-L", "127.0.0.1:" + own + ":box:8080"})...)
	ac.Env = environWithout("SSH_AUTH_SOCK")
	if err := ac.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ac.Process.Kill(); _ = ac.Wait() }()
	if !poll(pollTimeout, func() bool {
		last = httpThrough(own)
		return strings.Contains(last, f.page)
	}) {
		t.Errorf("alice's own ssh -L to box:8080 does not bring her page (%q), so the forward rows prove little", last)
	}
}

func (f *attackFixture) forwardDests() []string {
	p := f.s.Port
	return []string{
		"box:8080", "alice/box:8080", f.s.prefix + "-alice-box:8080", f.box.ID[:12] + ":8080", f.box.ID + ":8080",
		"BOX:8080", "idle:8080", f.boxIP + ":8080", "127.0.0.1:" + p, "localhost:" + p, "[::1]:" + p, "0.0.0.0:" + p,
		f.gateway + ":" + p, "172.17.0.1:" + p, "169.254.169.254:80", "/var/run/docker.sock", "/run/docker.sock",
	}
}

// httpThrough sends an HTTP request to 127.0.0.1:port and returns what came back (at most
// 3 s of it).
func httpThrough(port string) string {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 3*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = io.WriteString(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\nGET /containers/json?all=1 HTTP/1.0\r\nHost: docker\r\n\r\n")
	b, _ := io.ReadAll(c)
	return string(b)
}

// atkDirect is the direct-tcpip payload (RFC 4254, 7.2).
type atkDirect struct {
	Host       string
	Port       uint32
	OriginHost string
	OriginPort uint32
}

// openDirect opens a direct-tcpip channel on c and returns how it went.
func openDirect(c *ssh.Client, host string, port uint32) sshResult {
	ch, reqs, err := c.OpenChannel("direct-tcpip", ssh.Marshal(&atkDirect{Host: host, Port: port, OriginHost: "127.0.0.1", OriginPort: 40000}))
	if err != nil {
		var oe *ssh.OpenChannelError
		if errors.As(err, &oe) {
			return sshResult{Stderr: fmt.Sprintf("rejected (%v): %s", oe.Reason, oe.Message), Code: 1}
		}
		return sshResult{Stderr: err.Error(), Code: 1}
	}
	go ssh.DiscardRequests(reqs)
	defer ch.Close()
	_, _ = io.WriteString(ch, "GET / HTTP/1.0\r\n\r\n")
	done := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(ch); done <- b }()
	select {
	case b := <-done:
		return sshResult{Stdout: "channel opened; read: " + string(b)}
	case <-time.After(3 * time.Second):
		return sshResult{Stdout: "channel opened; nothing read in 3 s"}
	}
}

func (f *attackFixture) forwardRows(tb *attackTable) {
	for _, dest := range f.forwardDests() {
		tb.add("forward -L", "mallory", "ssh -L 127.0.0.1:PORT:"+dest, "the connection closes with nothing read",
			func(t *testing.T) (string, bool) {
				got := httpThrough(f.fwd[dest])
				return fmt.Sprintf("%q", got), got == ""
			})
	}
	tb.add("forward -R", "mallory", "ssh -R 127.0.0.1:PORT:127.0.0.1:22 (OpenSSH, ExitOnForwardFailure)", "refused: ssh exits 255",
		func(t *testing.T) (string, bool) {
			r := f.s.sshFlags(t, f.mallory, "mallory", []string{"-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:" + freePort(t) + ":127.0.0.1:22", "-N"})
			return describe(r), r.Code == 255
		})

	// Raw direct-tcpip channels, compared with a destination nobody has.
	box := atkObj{"box", f.box.ID}
	ctl := atkObj{f.ctl, f.ctlID}
	for _, form := range f.lookupForms() {
		tb.equivRow("direct-tcpip", "mallory", strconv.Quote(form.f(box))+":8080   ["+form.what+"]", strconv.Quote(form.f(ctl))+":8080",
			func(t *testing.T, control bool) sshResult {
				o := box
				if control {
					o = ctl
				}
				return openDirect(f.mc, form.f(o), 8080)
			}, pairsFor(form, box, ctl), nil)
	}
	ip := net.ParseIP(f.boxIP).To4()
	other := net.IPv4(ip[0], ip[1], ip[2], ip[3]^0x80).String()
	tb.equivRow("direct-tcpip", "mallory", f.boxIP+":8080   [alice's container's address]", other+":8080",
		func(t *testing.T, control bool) sshResult {
			if control {
				return openDirect(f.mc, other, 8080)
			}
			return openDirect(f.mc, f.boxIP, 8080)
		}, [][2]string{{other, f.boxIP}}, nil)
	for _, hp := range []struct {
		host string
		port uint32
	}{
		{"127.0.0.1", 2222}, {"localhost", 22}, {"::1", 22}, {"[::1]", 22}, {"0.0.0.0", 22}, {f.gateway, 80},
		{"172.17.0.1", 80}, {"169.254.169.254", 80}, {"127.1", 22}, {"2130706433", 22}, {"0x7f000001", 22},
		{"box", 0}, {"box", 70000}, {"box.", 8080}, {"box.localhost", 8080},
	} {
		tb.add("direct-tcpip", "mallory", fmt.Sprintf("%q port %d", hp.host, hp.port), "rejected", func(t *testing.T) (string, bool) {
			r := openDirect(f.mc, hp.host, hp.port)
			return describe(r), r.Stdout == "" && strings.HasPrefix(r.Stderr, "rejected")
		})
	}
}

// --- rows: other SSH channels and requests ---

func (f *attackFixture) requestRows(tb *attackTable) {
	sessionRequest := func(name string, payload []byte) func(t *testing.T) (string, bool) {
		return func(t *testing.T) (string, bool) {
			sess, err := f.mc.NewSession()
			if err != nil {
				return "no session: " + err.Error(), false
			}
			defer sess.Close()
			ok, err := sess.SendRequest(name, true, payload)
			return fmt.Sprintf("reply %v, err %v", ok, err), !ok
		}
	}
	tb.add("request", "mallory", `session request "auth-agent-req@openssh.com" (agent forwarding)`, "reply false",
		sessionRequest("auth-agent-req@openssh.com", nil))
	tb.add("request", "mallory", `session request "x11-req"`, "reply false", sessionRequest("x11-req", ssh.Marshal(&struct {
		Single   bool
		Protocol string
		Cookie   string
		Screen   uint32
	}{false, "MIT-MAGIC-COOKIE-1", "00112233445566778899aabbccddeeff", 0})))
	tb.add("request", "mallory", `session request "subsystem" "docker"`, "reply false",
		sessionRequest("subsystem", ssh.Marshal(&struct{ Name string }{"docker"})))
	tb.add("request", "mallory", `session request "subsystem" "sftp-server"`, "reply false",
		sessionRequest("subsystem", ssh.Marshal(&struct{ Name string }{"sftp-server"})))

	global := func(name string, payload []byte) func(t *testing.T) (string, bool) {
		return func(t *testing.T) (string, bool) {
			ok, reply, err := f.mc.SendRequest(name, true, payload)
			return fmt.Sprintf("reply %v %q, err %v", ok, reply, err), !ok
		}
	}
	tb.add("request", "mallory", `global "tcpip-forward" 127.0.0.1:0 (ssh -R)`, "reply false",
		global("tcpip-forward", ssh.Marshal(&struct {
			Addr string
			Port uint32
		}{"127.0.0.1", 0})))
	tb.add("request", "mallory", `global "tcpip-forward" 0.0.0.0:0`, "reply false",
		global("tcpip-forward", ssh.Marshal(&struct {
			Addr string
			Port uint32
		}{"0.0.0.0", 0})))
	tb.add("request", "mallory", `global "streamlocal-forward@openssh.com" /tmp/wm.sock`, "reply false",
		global("streamlocal-forward@openssh.com", ssh.Marshal(&struct{ Path string }{filepath.Join(f.dir, "wm.sock")})))

	channel := func(kind string, payload []byte) func(t *testing.T) (string, bool) {
		return func(t *testing.T) (string, bool) {
			ch, reqs, err := f.mc.OpenChannel(kind, payload)
			if err != nil {
				return "rejected: " + err.Error(), true
			}
			go ssh.DiscardRequests(reqs)
			defer ch.Close()
			_, _ = io.WriteString(ch, "GET /containers/json?all=1 HTTP/1.0\r\nHost: docker\r\n\r\n")
			_ = ch.CloseWrite()
			b, _ := io.ReadAll(io.LimitReader(ch, 1<<16))
			return "channel opened; read " + strconv.Quote(clip(string(b), 300)), false
		}
	}
	for _, sock := range []string{"/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock"} {
		tb.add("channel", "mallory", `"direct-streamlocal@openssh.com" `+sock, "rejected",
			channel("direct-streamlocal@openssh.com", ssh.Marshal(&struct {
				Path     string
				Reserved string
				Port     uint32
			}{sock, "", 0})))
	}
	tb.add("channel", "mallory", `"auth-agent@openssh.com"`, "rejected", channel("auth-agent@openssh.com", nil))
	tb.add("channel", "mallory", `"x11"`, "rejected", channel("x11", ssh.Marshal(&struct {
		Host string
		Port uint32
	}{"127.0.0.1", 6000})))
	tb.add("channel", "mallory", `"forwarded-tcpip" to 127.0.0.1:22`, "rejected", channel("forwarded-tcpip", ssh.Marshal(&atkDirect{"127.0.0.1", 22, "127.0.0.1", 1})))
	tb.add("channel", "mallory", `"tun@openssh.com"`, "rejected", channel("tun@openssh.com", ssh.Marshal(&struct{ Mode, Unit uint32 }{1, 0})))

	// A per-user Docker API over the session (dial-stdio) must be mallory's alone.
	tb.add("cli", "mallory", `"docker system dial-stdio" then GET /containers/json?all=1`, "nothing of alice's comes back",
		func(t *testing.T) (string, bool) {
			sess, err := f.mc.NewSession()
			if err != nil {
				return err.Error(), false
			}
			defer sess.Close()
			sess.Stdin = strings.NewReader("GET /containers/json?all=1 HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
			var out lockedBuffer
			sess.Stdout, sess.Stderr = &out, &out
			done := make(chan error, 1)
			go func() { done <- sess.Run("docker system dial-stdio") }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
			}
			got := out.String()
			return strconv.Quote(clip(got, 500)), !strings.Contains(got, f.box.ID[:12]) && !strings.Contains(got, "\"alice\"")
		})
}

// --- rows: images ---

func (f *attackFixture) imageRows(tb *attackTable) {
	notYours := func(r sshResult) string {
		if !strings.Contains(r.Stderr, "not yours") {
			return `stderr does not say "not yours"`
		}
		return ""
	}
	for _, tags := range [][2]string{
		{f.nsTag, f.ns + "/alice/" + f.ctl + ":" + f.tag1},
		{f.nsUsedTag, f.ns + "/alice/" + f.ctl + ":" + f.tagUsed},
		{f.ns + "/alice/proj", f.ns + "/alice/" + f.ctl},
		{f.nsTag + " " + f.nsUsedTag, f.ns + "/alice/" + f.ctl + ":" + f.tag1 + " " + f.ns + "/alice/" + f.ctl + ":" + f.tagUsed},
	} {
		tb.equivRow("cli rmi", "mallory", "rmi "+tags[0], "rmi "+tags[1], func(t *testing.T, control bool) sshResult {
			ref := tags[0]
			if control {
				ref = tags[1]
			}
			return f.goRun(f.mc, false, append([]string{"rmi"}, strings.Fields(ref)...)...)
		}, [][2]string{{f.ctl, "proj"}}, notYours)
	}
	tb.add("cli rmi", "mallory", "rmi "+f.img+" (the shared image)", "refused; the image is still there", func(t *testing.T) (string, bool) {
		r := f.goRun(f.mc, false, "rmi", f.img)
		ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
		defer cancel()
		_, err := f.s.cli.ImageInspect(ctx, f.img)
		return describe(r) + fmt.Sprintf("; image inspect: %v", err), r.Code != 0 && err == nil
	})

	// Pulls aimed at the server's own networks: refused before any engine is asked, with no
	// word of what an engine or registry would have said.
	pullRefused := func(srv *server, ref string, asked func() int) func(t *testing.T) (string, bool) {
		return func(t *testing.T) (string, bool) {
			before := asked()
			r := srv.ssh(t, f.mallory, "mallory", "pull", "'"+ref+"'")
			after := asked()
			got := describe(r)
			ok := r.Code != 0 && r.Stdout == "" && strings.Count(r.Stderr, "\n") == 1 && strings.HasSuffix(r.Stderr, "\n")
			if strings.Contains(r.Stdout+r.Stderr, f.marker) {
				got += "; the engine's own text came back"
				ok = false
			}
			if after != before {
				got += fmt.Sprintf("; the engine was asked (%d requests)", after-before)
				ok = false
			}
			return got, ok
		}
	}
	want := "refused in one line, nothing on stdout, no engine text, the engine never asked"
	for _, ref := range []string{
		"127.0.0.1:5000/x/y:1", "localhost:5000/x:1", "10.0.0.1/x:1", "169.254.169.254/x:1", "[::1]:5000/x:1",
		"192.168.1.1:5000/a:b", "172.17.0.1:5000/x:1", "172.16.5.4/x:1", "0.0.0.0:5000/x:1", "127.0.0.2/x:1",
		"localhost/x:1", "LocalHost:5000/x:1", "[fe80::1]:5000/x:1", "[::ffff:127.0.0.1]:5000/x:1",
		"100.100.100.200/x:1", "10.0.0.1:443/x/y@sha256:" + strings.Repeat("ab", 32),
	} {
		tb.add("cli pull (fake engine)", "mallory", "pull "+ref, want, pullRefused(f.fakeSrv, ref, f.fake.pulls))
	}
	regRef := "127.0.0.1:" + f.reg.URL[strings.LastIndex(f.reg.URL, ":")+1:] + "/x/y:1"
	tb.add("cli pull (real engine)", "mallory", "pull "+regRef+" (a registry on 127.0.0.1 answering with a marker)", want,
		pullRefused(f.s.server, regRef, f.reg.Hits))
}

// --- rows: GPUs ---

func (f *attackFixture) gpuRows(tb *attackTable) {
	for _, args := range [][]string{{"gpus", "--json"}, {"gpus"}} {
		tb.add("cli gpus", "mallory", shownArgs(args), "no owner, container or PID of anyone else", func(t *testing.T) (string, bool) {
			r := f.goRun(f.mc, false, args...)
			out := r.Stdout + r.Stderr
			bad := r.Code != 0 || strings.Contains(out, "alice") || strings.Contains(out, "box") ||
				strings.Contains(out, f.box.ID[:12]) || strings.Contains(out, f.s.prefix)
			return describe(r), !bad
		})
	}
}

// --- rows: SIF files ---

func (f *attackFixture) sifRows(tb *attackTable) {
	tb.equivRow("cli sif rm", "mallory", "sif rm "+f.sifName, "sif rm ctlsif-"+f.ctl+".sif", func(t *testing.T, control bool) sshResult {
		if control {
			return f.goRun(f.mc, false, "sif", "rm", "ctlsif-"+f.ctl+".sif")
		}
		return f.goRun(f.mc, false, "sif", "rm", f.sifName)
	}, [][2]string{{"ctlsif-" + f.ctl + ".sif", f.sifName}}, nil)
	tb.add("cli sif ls", "mallory", "sif ls --json", "an empty list", func(t *testing.T) (string, bool) {
		r := f.goRun(f.mc, false, "sif", "ls", "--json")
		return describe(r), r.Code == 0 && strings.TrimSpace(r.Stdout) == "[]"
	})
	// Her own SIF of the same image shares the file (a hard link); removing hers must
	// leave alice's as it is.
	tb.add("cli sif", "mallory", "sif "+f.img+" then sif rm "+f.sifName+" (alice has a SIF of the same image)",
		"both succeed for mallory; alice's file is unchanged", func(t *testing.T) (string, bool) {
			r1 := f.goRun(f.mc, false, "sif", f.img)
			r2 := f.goRun(f.mc, false, "sif", "rm", f.sifName)
			got := describe(r1) + "; then " + describe(r2)
			p := filepath.Join(f.s.DataDir, "sif", "alice", f.sifName)
			if _, err := os.Stat(p); err != nil {
				return got + "; alice's SIF is gone", false
			}
			if sha256File(t, p) != f.sifSum {
				return got + "; alice's SIF changed", false
			}
			return got, r1.Code == 0 && r2.Code == 0
		})
}

// --- rows: an image whose labels lie ---

func (f *attackFixture) forgedRows(tb *attackTable) {
	t := f.t
	f.forged = "wm-attack-forged:" + dockertest.RunID()
	labels := map[string]string{
		docker.LabelManaged: "true", docker.LabelOwner: "alice", docker.LabelName: "box2", "whalemountain.kind": "container",
		"whalemountain.gpus": "GPU-00000000-1111-2222-3333-444444444444", "whalemountain.gpu-indices": "0",
		"whalemountain.sif-export": "alice", docker.LabelGroups: "lab/team-a", docker.LabelDatasets: "staff",
	}
	maps.Copy(labels, f.s.labels) // the site's selector labels too
	f.forgedID = forgeImage(t, f.s.cli, f.img, f.forged, labels)

	tb.add("cli run", "mallory", "run --name x "+f.forged+" (labels: managed, owner=alice, name=box2, kind, gpus, gpu-indices, sif-export, site selectors)",
		`"x: created and started" (no GPU)`, func(t *testing.T) (string, bool) {
			r := f.s.run(t, f.mallory, "mallory", "run", "--name", "x", f.forged)
			f.xID = f.forgedContainer(t, "")
			return describe(r), r.Code == 0 && r.Stdout == "x: created and started\n"
		})
	engineLabel := func(key, want string) func(t *testing.T) (string, bool) {
		return func(t *testing.T) (string, bool) {
			if f.xID == "" {
				return "no container of the forged image on the engine", false
			}
			l := f.s.engineInspect(t, f.xID).Config.Labels
			v, has := l[key]
			return fmt.Sprintf("%s=%q (set: %v)", key, v, has), v == want && (has || want == "")
		}
	}
	tb.add("engine", "engine", "label "+docker.LabelOwner+" of mallory's x", "mallory", engineLabel(docker.LabelOwner, "mallory"))
	tb.add("engine", "engine", "label "+docker.LabelName+" of mallory's x", "x", engineLabel(docker.LabelName, "x"))
	tb.add("engine", "engine", "label "+docker.LabelManaged+" of mallory's x", "true", engineLabel(docker.LabelManaged, "true"))
	for _, key := range []string{"whalemountain.gpus", "whalemountain.gpu-indices", "whalemountain.sif-export", docker.LabelGroups} {
		tb.add("engine", "engine", "label "+key+" of mallory's x", "not set: no image decides it", engineLabel(key, ""))
	}
	tb.add("engine", "engine", "label "+docker.LabelDatasets+" of mallory's x (the image says staff)", "course: what the server mounted",
		engineLabel(docker.LabelDatasets, "course"))
	tb.add("engine", "engine", "mounts of mallory's x", "her home and the course dataset (read-only); no team-a, no staff", func(t *testing.T) (string, bool) {
		if f.xID == "" {
			return "no container of the forged image", false
		}
		var got []string
		ok := true
		for _, m := range f.s.engineInspect(t, f.xID).Mounts {
			got = append(got, fmt.Sprintf("%s:%s rw=%v", m.Name+m.Source, m.Destination, m.RW))
			if m.Destination == "/datasets/course" && m.RW || m.Destination == "/datasets/staff" || strings.HasPrefix(m.Destination, "/groups") {
				ok = false
			}
		}
		return strings.Join(got, ", "), ok && len(got) == 2
	})
	tb.add("engine", "engine", "label whalemountain.kind of mallory's x", `"container" or not set`, func(t *testing.T) (string, bool) {
		if f.xID == "" {
			return "no container of the forged image", false
		}
		v := f.s.engineInspect(t, f.xID).Config.Labels["whalemountain.kind"]
		return strconv.Quote(v), v == "" || v == "container"
	})
	tb.add("engine", "engine", "GPU devices of mallory's x", "none", func(t *testing.T) (string, bool) {
		if f.xID == "" {
			return "no container of the forged image", false
		}
		hc := f.s.engineInspect(t, f.xID).HostConfig
		return fmt.Sprintf("%+v", hc.DeviceRequests), len(hc.DeviceRequests) == 0
	})
	tb.add("cli inspect", "mallory", "inspect x", "owner mallory, name x, no GPUs", func(t *testing.T) (string, bool) {
		r := f.goRun(f.mc, false, "inspect", "x")
		var d map[string]any
		_ = json.Unmarshal([]byte(r.Stdout), &d)
		gpus, _ := d["gpus"].(string)
		return describe(r), r.Code == 0 && d["owner"] == "mallory" && d["name"] == "x" && gpus == ""
	})
	tb.add("cli ps", "mallory", "ps -a --json", "x is mallory's, without GPUs", func(t *testing.T) (string, bool) {
		r := f.goRun(f.mc, false, "ps", "-a", "--json")
		var list []map[string]any
		_ = json.Unmarshal([]byte(r.Stdout), &list)
		for _, e := range list {
			if e["name"] == "x" {
				gpus, _ := e["gpus"].(string)
				return describe(r), e["owner"] == "mallory" && gpus == ""
			}
		}
		return describe(r), false
	})
	f.aliceViewRows(tb, "")

	// The SIF export of the forged image, caught half-way and after.
	tb.add("cli sif", "mallory", "sif "+f.forged+" (held half-way)", "an export container exists while the build waits",
		func(t *testing.T) (string, bool) {
			if err := os.WriteFile(f.stall, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			f.sifResult = make(chan sshResult, 1)
			mc := f.mc
			go func() {
				r, err := atkExec(mc, atkQuote([]string{"sif", f.forged}), false, 90*time.Second)
				if err != nil {
					r.Stderr += "\n[client: " + err.Error() + "]"
				}
				f.sifResult <- r
			}()
			var found string
			poll(15*time.Second, func() bool {
				found = f.forgedContainer(t, f.xID)
				return found != ""
			})
			return "export container " + found, found != ""
		})
	f.aliceViewRows(tb, " (during the export)")
	tb.add("cli sif", "mallory", "sif "+f.forged+" (let go)", "the build ends, made for mallory", func(t *testing.T) (string, bool) {
		_ = os.Remove(f.stall)
		if f.sifResult == nil {
			return "no build was started", false
		}
		select {
		case r := <-f.sifResult:
			return describe(r), r.Code == 0 && strings.Contains(r.Stdout, " made (")
		case <-time.After(90 * time.Second):
			return "the build did not end", false
		}
	})
	f.aliceViewRows(tb, " (after the export)")
	mSIF := sifNameOf(t, f.forged)
	tb.equivRow("scp get", "alice", "/sif/"+mSIF+" (mallory's SIF)", "/sif/ctlsif-"+f.ctl+".sif", func(t *testing.T, control bool) sshResult {
		local := filepath.Join(f.dir, "alice-got.sif")
		_ = os.Remove(local)
		remote := "/sif/" + mSIF
		if control {
			remote = "/sif/ctlsif-" + f.ctl + ".sif"
		}
		return f.s.fileClient(t, "scp", f.alice, "alice@127.0.0.1:"+remote, local)
	}, [][2]string{{"ctlsif-" + f.ctl + ".sif", mSIF}}, nil)
	tb.add("cli sif ls", "alice", "sif ls --json", "only alice's own SIF", func(t *testing.T) (string, bool) {
		r := f.goRun(f.ac, false, "sif", "ls", "--json")
		return describe(r), r.Code == 0 && !strings.Contains(r.Stdout, mSIF) && strings.Contains(r.Stdout, f.sifName)
	})
	tb.add("engine", "engine", "containers of the forged image after the build", "only mallory's x", func(t *testing.T) (string, bool) {
		other := f.forgedContainer(t, f.xID)
		return "other: " + other, other == ""
	})
}

// forgedContainer is the ID of a container of the forged image other than except, or "".
func (f *attackFixture) forgedContainer(t *testing.T, except string) string {
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	res, err := f.s.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("ancestor", f.forgedID)})
	if err != nil {
		t.Errorf("list containers: %v", err)
		return ""
	}
	for _, c := range res.Items {
		if c.ID != except {
			return c.ID
		}
	}
	return ""
}

// aliceViewRows are what alice and the TA must (not) see of mallory's forged container.
func (f *attackFixture) aliceViewRows(tb *attackTable, when string) {
	box2 := atkObj{"box2", strings.Repeat("0", 64)}
	ctl := atkObj{f.ctl4, strings.Repeat("0", 64)}
	for _, verb := range [][]string{{"inspect"}, {"logs"}, {"exec", "", "--", "true"}, {"stop"}} {
		args := func(o atkObj) []string {
			a := slices.Clone(verb)
			if len(a) > 1 && a[1] == "" {
				a[1] = o.name
				return a
			}
			return append(a, o.name)
		}
		tb.equivRow("cli "+verb[0], "alice", shownArgs(args(box2))+when, shownArgs(args(ctl)), func(t *testing.T, control bool) sshResult {
			if control {
				return f.goRun(f.ac, false, args(ctl)...)
			}
			return f.goRun(f.ac, false, args(box2)...)
		}, [][2]string{{ctl.name, box2.name}}, nil)
	}
	tb.add("cli ps", "alice", "ps -a --json"+when, "exactly box and idle", func(t *testing.T) (string, bool) {
		r := f.goRun(f.ac, false, "ps", "-a", "--json")
		var list []psEntry
		_ = json.Unmarshal([]byte(r.Stdout), &list)
		var names []string
		for _, e := range list {
			names = append(names, e.Owner+"/"+e.Name)
		}
		slices.Sort(names)
		return describe(r), slices.Equal(names, []string{"alice/box", "alice/idle"})
	})
	tb.add("cli ps", "tanaka", "ps --all-users -a --json"+when, "no alice/box2; x, where listed, is mallory's", func(t *testing.T) (string, bool) {
		r := f.goRun(f.tc, false, "ps", "--all-users", "-a", "--json")
		var list []psEntry
		_ = json.Unmarshal([]byte(r.Stdout), &list)
		ok := r.Code == 0
		for _, e := range list {
			if e.Name == "box2" || (e.Name == "x" && e.Owner != "mallory") || (e.Owner == "alice" && e.Name != "box" && e.Name != "idle") {
				ok = false
			}
		}
		return describe(r), ok
	})
	tb.add("sftp", "alice", "ls /containers"+when, "no box2", func(t *testing.T) (string, bool) {
		r := f.s.sftpBatch(t, f.alice, "alice", "ls /containers")
		return describe(r), r.Code == 0 && !strings.Contains(r.Stdout, "box2")
	})
}

// --- the restart ---

// restart stops the server and starts it again on the same data directory and configuration.
func (f *attackFixture) restart() {
	t := f.t
	f.mc.Close()
	f.ac.Close()
	f.tc.Close()
	_ = f.fwdCmd.Process.Kill()
	_ = f.fwdCmd.Wait()
	cfg, err := os.ReadFile(f.cfgPath)
	if err != nil {
		t.Fatalf("the configuration of the first server: %v", err)
	}
	old := f.s
	old.stop(t)
	ns := startServer(t, serverOptions{Config: string(cfg), DataDir: old.DataDir})
	f.s = &ctrServer{server: ns, cli: old.cli, img: old.img, prefix: old.prefix, labels: old.labels}
	f.connect()
}

func (f *attackFixture) restartRows(tb *attackTable) {
	running := func(who, name string, id func() string) {
		tb.add("restart", "engine", who+"'s "+name+" after a server restart", "still there and running", func(t *testing.T) (string, bool) {
			if id() == "" {
				return "never made", false
			}
			ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
			defer cancel()
			res, err := f.s.cli.ContainerInspect(ctx, id(), client.ContainerInspectOptions{})
			if err != nil {
				return err.Error(), false
			}
			return fmt.Sprintf("%+v", res.Container.State), res.Container.State != nil && res.Container.State.Running
		})
	}
	running("mallory", "mwork", func() string { return f.mwork })
	running("mallory", "x (forged labels)", func() string { return f.xID })
	running("alice", "box", func() string { return f.box.ID })
	tb.add("restart", "engine", "alice's idle after a server restart", "still there, exited", func(t *testing.T) (string, bool) {
		st := f.s.engineInspect(t, f.idle.ID).State
		return fmt.Sprintf("%+v", st), st != nil && !st.Running && st.StartedAt == f.idle.State.StartedAt
	})
	tb.add("cli ps", "mallory", "ps -a --json (after the restart)", "mwork and x, hers", func(t *testing.T) (string, bool) {
		r := f.goRun(f.mc, false, "ps", "-a", "--json")
		var list []psEntry
		_ = json.Unmarshal([]byte(r.Stdout), &list)
		var names []string
		for _, e := range list {
			names = append(names, e.Owner+"/"+e.Name)
		}
		slices.Sort(names)
		return describe(r), slices.Equal(names, []string{"mallory/mwork", "mallory/x"})
	})
	f.aliceViewRows(tb, " (after the restart)")
}

// --- after the table ---

// verifyUntouched checks alice's objects are as they were before the attacks.
func (f *attackFixture) verifyUntouched() {
	t := f.t
	if bad := f.aliceIntact(t); bad != "" {
		t.Errorf("after the attacks: %s", bad)
	}
	if st := f.s.engineInspect(t, f.idle.ID).State; st == nil || st.FinishedAt != f.idle.State.FinishedAt {
		t.Errorf("alice's idle was started or changed: %+v", st)
	}
	back := filepath.Join(f.dir, "secret-back.txt")
	if r := f.s.sftpBatch(t, f.alice, "alice", "get /home/secret.txt "+back); r.Code != 0 {
		t.Errorf("alice cannot get her own secret back: %s", r)
	} else if b, _ := os.ReadFile(back); string(b) != f.secret+"\n" {
		t.Errorf("alice's secret is now %q", b)
	}
	r := f.s.run(t, f.alice, "alice", "exec", "box", "--", "sh", "-c", "cat /www/index.html; ls -a /tmp /home/alice")
	if r.Code != 0 || !strings.Contains(r.Stdout, f.page) || strings.Contains(r.Stdout, "pwned") || strings.Contains(r.Stdout, "stolen") {
		t.Errorf("alice's box after the attacks (page, /tmp, home): %s", r)
	}
	p := filepath.Join(f.s.DataDir, "sif", "alice", f.sifName)
	if _, err := os.Stat(p); err != nil || sha256File(t, p) != f.sifSum {
		t.Errorf("alice's SIF %s is gone or changed (%v)", f.sifName, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	for _, ref := range []string{f.nsTag, f.nsUsedTag} {
		if _, err := f.s.cli.ImageInspect(ctx, ref); err != nil {
			t.Errorf("alice's tag %s is gone: %v", ref, err)
		}
	}
	if cs := f.s.engineContainers(t, "alice", ""); len(cs) != 2 {
		t.Errorf("alice has %d containers on the engine, want her 2 (box, idle): %+v", len(cs), cs)
	}
}

// checkLeaks looks for alice's IDs, address and contents in what mallory got back, unless
// she typed them herself.
func (f *attackFixture) checkLeaks(tb *attackTable) {
	secrets := map[string]string{
		"alice's box ID": f.box.ID[:12], "alice's idle ID": f.idle.ID[:12], "alice's box address": f.boxIP,
		"alice's file": f.secret, "alice's page": f.page, "alice's logs": f.logMark,
		"alice's group workspace": f.groupSecret, "the TAs' dataset": f.staffSecret,
	}
	for what, s := range secrets {
		// Her own audit entries replay what she typed in earlier rows: there a secret counts
		// as hers when she typed it in any row.
		typedAnywhere := false
		for _, seen := range tb.seen {
			typedAnywhere = typedAnywhere || strings.Contains(seen[0], s)
		}
		for _, seen := range tb.seen {
			if strings.HasPrefix(seen[0], "audit") && typedAnywhere {
				continue
			}
			if strings.Contains(seen[1], s) && !strings.Contains(seen[0], s) {
				f.t.Errorf("%s (%s) came back to mallory for input %s:\n%s", what, s, seen[0], clip(seen[1], 600))
			}
		}
	}
}

// --- runners ---

// TestE2EAttackRunner is the attack table of personal GitLab runners: mallory reaches
// alice's runner by no verb, flag or name; nobody reaches a runner container as a
// container, not even its owner; alice's runner socket is her own Docker API and nothing
// more (no privileges, host paths, host namespaces, the engine's socket, anyone else's
// container or the runner itself); the token is in no argv answer, log or audit line.
func TestE2EAttackRunner(t *testing.T) {
	f := newRunnerFixture(t, "x", "")
	s, alice, mallory := f.s, f.alice, f.bob
	const victim, attacker = "alice", "bob"
	runnerID, token := f.gl.AddRunner(f.demo)
	_, mToken := f.gl.AddRunner(f.lab)
	if r := f.setToken(alice, victim, "alice/demo", token); r.Code != 0 {
		t.Fatalf("alice's runner token: %s", r)
	}
	if r := f.setToken(mallory, attacker, "bob/lab", mToken); r.Code != 0 {
		t.Fatalf("mallory's runner token: %s", r)
	}
	f.waitPolling(alice, victim, runnerID)
	s.mustRun(t, mallory, attacker, "run", "--name", "mbox", f.img)
	mbox := s.engineContainer(t, attacker, "mbox").ID
	runnerCtr := s.engineContainer(t, victim, "alice-demo").ID
	sockDir := filepath.Join(f.runnerDir(victim, "alice-demo"), "api")
	sock := filepath.Join(sockDir, "docker.sock")
	dcli := newDockerCLI(t, s.server, alice, victim).withHost("unix://" + sock)
	ctl, ctlUser := randomLetters(6), randomLetters(5)
	ctlID := strings.Repeat("0", 12)

	intact := func() (string, bool) {
		in := s.engineInspect(t, runnerCtr)
		ok := in.State != nil && in.State.Running && f.gl.Runner(runnerID).Exists
		_, err := os.Stat(sock)
		return fmt.Sprintf("alice's runner running %v, registered %v, socket %v", in.State != nil && in.State.Running,
			f.gl.Runner(runnerID).Exists, err), ok && err == nil
	}
	tb := &attackTable{}
	// mallory names alice's runner every way: the answer is the one for a runner nobody has.
	for _, form := range []struct{ args, ctl []string }{
		{[]string{"runner", "logs", "alice-demo"}, []string{"runner", "logs", ctl}},
		{[]string{"runner", "logs", "alice/demo"}, []string{"runner", "logs", ctlUser + "/demo"}},
		{[]string{"runner", "logs", "--user", victim, "alice-demo"}, []string{"runner", "logs", "--user", ctlUser, ctl}},
		{[]string{"runner", "restart", "--user", victim, "--reason", "x", "alice-demo"}, []string{"runner", "restart", "--user", ctlUser, "--reason", "x", ctl}},
		{[]string{"runner", "stop", "--user", victim, "--reason", "x", "alice-demo"}, []string{"runner", "stop", "--user", ctlUser, "--reason", "x", ctl}},
		{[]string{"runner", "rm", "--user", victim, "--reason", "x", "alice-demo"}, []string{"runner", "rm", "--user", ctlUser, "--reason", "x", ctl}},
		{[]string{"runner", "rm", "--user", victim, "--reason", "x"}, []string{"runner", "rm", "--user", ctlUser, "--reason", "x"}},
		{[]string{"runner", "rotate", "alice-demo"}, []string{"runner", "rotate", ctl}},
	} {
		tb.add("runner cli", "mallory", shownArgs(form.args), "the answer for a runner nobody has; alice's runner untouched", func(t *testing.T) (string, bool) {
			got, same := sameAsControl(s.run(t, mallory, attacker, form.args...), s.run(t, mallory, attacker, form.ctl...),
				[][2]string{{ctl, "alice-demo"}, {ctlUser, victim}}, true)
			st, ok := intact()
			return got + "\n" + st, same && ok
		})
	}
	tb.add("runner cli", "mallory", "runner status --all --json", "mallory's own runner only", func(t *testing.T) (string, bool) {
		r := s.run(t, mallory, attacker, "runner", "status", "--all", "--json")
		return describe(r), r.Code == 0 && !strings.Contains(r.Stdout, victim) && strings.Contains(r.Stdout, "bob-lab")
	})
	// A runner container is nobody's container, not even its owner's: every container verb
	// answers as for a name nobody has.
	for _, who := range []struct {
		key        *testKey
		user, name string
	}{{alice, victim, "alice-demo"}, {mallory, attacker, "alice/alice-demo"}, {mallory, attacker, "bob-lab"}} {
		for _, verb := range [][]string{{"exec", "NAME", "--", "true"}, {"logs", "NAME"}, {"inspect", "NAME"}, {"stop", "NAME"}, {"rm", "-f", "NAME"}} {
			args, ctlArgs := slices.Clone(verb), slices.Clone(verb)
			for i := range args {
				if args[i] == "NAME" {
					args[i], ctlArgs[i] = who.name, strings.Replace(who.name, strings.TrimPrefix(who.name, "alice/"), ctl, 1)
				}
			}
			actor := "alice"
			if who.user == attacker {
				actor = "mallory"
			}
			tb.add("container verbs", actor, shownArgs(args), "a runner container is no user's container: the answer for a name nobody has", func(t *testing.T) (string, bool) {
				got, same := sameAsControl(s.run(t, who.key, who.user, args...), s.run(t, who.key, who.user, ctlArgs...),
					[][2]string{{ctl, strings.TrimPrefix(who.name, "alice/")}}, true)
				st, ok := intact()
				return got + "\n" + st, same && ok
			})
		}
	}
	// alice's runner socket, driven with the real docker CLI as the docker executor would.
	refusedRuns := [][]string{
		{"run", "--privileged", f.img, "true"},
		{"run", "-v", "/:/host", f.img, "true"},
		{"run", "-v", "/var/run/docker.sock:/var/run/docker.sock", f.img, "true"},
		{"run", "--mount", "type=bind,source=" + sockDir + ",target=/x", f.img, "true"},
		{"run", "--mount", "type=bind,source=" + f.runnerDir(victim, "alice-demo") + ",target=/x", f.img, "true"},
		{"run", "--network", "host", f.img, "true"},
		{"run", "--pid", "host", f.img, "true"},
		{"run", "--ipc", "host", f.img, "true"},
		{"run", "--userns", "host", f.img, "true"},
		{"run", "--cap-add", "SYS_ADMIN", f.img, "true"},
		{"run", "--device", "/dev/mem", f.img, "true"},
		{"run", "--security-opt", "seccomp=unconfined", f.img, "true"},
		{"run", "--network", "container:" + mbox, f.img, "true"},
		{"run", "--volumes-from", mbox, f.img, "true"},
		{"run", "--label", docker.LabelOwner + "=bob", "--label", docker.LabelKind + "=runner", "--name", "forged", "-d", f.img, "sleep", "60"},
		// The one host path a job gets is its own runner's socket directory, asked for
		// exactly as the runner sees it; every other path near it is a host path like any
		// other, the socket file itself included.
		{"run", "-v", filepath.Join(f.runnerDir(attacker, "bob-lab"), "api") + ":/run/whalemountain", f.img, "true"},
		{"run", "-v", filepath.Join(f.runnerDir(attacker, "bob-lab"), "api", "docker.sock") + ":/var/run/docker.sock", f.img, "true"},
		{"run", "-v", sock + ":/var/run/docker.sock", f.img, "true"},
		{"run", "-v", sockDir + ":/run/whalemountain", f.img, "true"},
		{"run", "-v", "/run/docker.sock:/var/run/docker.sock", f.img, "true"},
		{"run", "-v", docker.RunnerSocketDirBind + "/docker.sock:/var/run/docker.sock", f.img, "true"},
		{"run", "-v", "/etc/gitlab-runner/docker.sock:/var/run/docker.sock", f.img, "true"},
		{"run", "-v", "/etc/gitlab-runner/../gitlab-runner/api:/run/whalemountain", f.img, "true"},
		{"run", "-v", "/etc/gitlab-runner//api:/run/whalemountain", f.img, "true"},
		{"run", "-v", "/etc/gitlab-runner:/x", f.img, "true"},
		{"run", "-v", "/etc/gitlab-runner/config.toml:/x", f.img, "true"},
		{"run", "--mount", "type=bind,source=" + docker.RunnerSocketDirBind + ",target=/run/whalemountain", f.img, "true"},
		{"run", "-v", docker.RunnerSocketDirBind + ":/a", "-v", docker.RunnerSocketDirBind + ":/b", f.img, "true"},
		{"run", "-v", docker.RunnerSocketDirBind + ":/x:ro,rshared", f.img, "true"},
		{"run", "-v", docker.RunnerSocketDirBind + ":/home/alice", f.img, "true"},
	}
	for _, args := range refusedRuns {
		forged := slices.Contains(args, "forged")
		tb.add("runner socket", "alice's runner", "docker "+shownArgs(args), "refused with the door's one line, nothing made (a forged label is overwritten)", func(t *testing.T) (string, bool) {
			before := len(s.engineContainers(t, victim, ""))
			r := dcli.run(args...)
			after := s.engineContainers(t, victim, "")
			if forged {
				// Accepted, but as alice's container: the server's labels win.
				c := s.engineContainer(t, victim, "forged")
				ok := r.Code == 0 && c.Labels[docker.LabelOwner] == victim && c.Labels[docker.LabelKind] == docker.KindContainer
				dcli.run("rm", "-f", "forged")
				return describe(r) + fmt.Sprintf("\nlabels %v", c.Labels), ok
			}
			first, _, _ := strings.Cut(r.Stderr, "\n")
			return describe(r), r.Code != 0 && len(after) == before && strings.HasPrefix(first, "docker: Error response from daemon: ")
		})
	}
	for _, ref := range []string{mbox, mbox[:12], runnerCtr, runnerCtr[:12], "bob-lab", "mbox", s.prefix + "-" + attacker + "-mbox"} {
		tb.add("runner socket", "alice's runner", "docker inspect "+ref, "No such container, as for an ID nobody has", func(t *testing.T) (string, bool) {
			r, c := dcli.run("inspect", ref), dcli.run("inspect", ctlID)
			got, same := sameAsControl(r, c, [][2]string{{ctlID, ref}}, true)
			return got, same
		})
	}
	tb.add("runner socket", "alice's runner", "docker ps -a", "alice's containers only: no runner, nothing of mallory's", func(t *testing.T) (string, bool) {
		r := dcli.run("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}")
		bad := r.Code != 0 || strings.Contains(r.Stdout, mbox) || strings.Contains(r.Stdout, runnerCtr) || strings.Contains(r.Stdout, "runner")
		return describe(r), !bad
	})
	tb.add("runner socket", "alice's runner", "docker create/start/wait/rm", "works, and the container is alice's", func(t *testing.T) (string, bool) {
		if r := dcli.run("create", "--name", "sockjob", f.img, "true"); r.Code != 0 {
			return describe(r), false
		}
		c := s.engineContainer(t, victim, "sockjob")
		ok := c.Labels[docker.LabelOwner] == victim && c.Labels[docker.LabelKind] == docker.KindContainer
		r1, r2, r3 := dcli.run("start", "sockjob"), dcli.run("wait", "sockjob"), dcli.run("rm", "sockjob")
		return fmt.Sprintf("labels %v; %s; %s; %s", c.Labels, describe(r1), describe(r2), describe(r3)),
			ok && r1.Code == 0 && strings.TrimSpace(r2.Stdout) == "0" && r3.Code == 0
	})
	tb.add("runner socket", "alice's runner", "docker create -v "+docker.RunnerSocketDirBind+":/run/whalemountain",
		"accepted: the server mounts alice's own runner socket directory there, read-only, no other host path", func(t *testing.T) (string, bool) {
			r := dcli.run("create", "--name", "sockbind", "-v", docker.RunnerSocketDirBind+":/run/whalemountain", f.img, "true")
			if r.Code != 0 {
				return describe(r), false
			}
			defer dcli.run("rm", "-f", "sockbind")
			in := s.engineInspect(t, s.engineContainer(t, victim, "sockbind").ID)
			var binds []string
			for _, m := range in.Mounts {
				if m.Type == "bind" {
					binds = append(binds, fmt.Sprintf("%s:%s:rw=%v", m.Source, m.Destination, m.RW))
				}
			}
			return fmt.Sprintf("binds %v", binds), len(binds) == 1 && binds[0] == sockDir+":/run/whalemountain:rw=false"
		})
	// Through the ssh door, a student is no runner: the runner's socket path is a host path.
	mcli := newDockerCLI(t, s.server, mallory, attacker)
	for _, b := range []string{docker.RunnerSocketDirBind, filepath.Join(f.runnerDir(attacker, "bob-lab"), "api")} {
		args := []string{"run", "-v", b + ":/var/run/docker.sock", f.img, "true"}
		tb.add("docker api", "mallory", "docker "+shownArgs(args), "refused with the door's one line, nothing made", func(t *testing.T) (string, bool) {
			before := len(s.engineContainers(t, attacker, ""))
			r := mcli.run(args...)
			first, _, _ := strings.Cut(r.Stderr, "\n")
			return describe(r), r.Code != 0 && len(s.engineContainers(t, attacker, "")) == before &&
				strings.HasPrefix(first, "docker: Error response from daemon: ")
		})
	}
	// The token: refused on the command line without an echo; in no answer, log or audit line.
	tb.add("runner cli", "alice", "runner token <TOKEN on the command line>", "refused, the token not repeated, nothing changed", func(t *testing.T) (string, bool) {
		r := s.run(t, alice, victim, "runner", "token", "--project", "alice/demo", token)
		st, ok := intact()
		return describe(r) + "\n" + st, r.Code == 2 && !strings.Contains(r.Stdout+r.Stderr, token) && ok
	})
	tb.add("runner cli", "mallory", "runner token with alice's project and a token of nobody", "refused; alice's runner untouched", func(t *testing.T) (string, bool) {
		r := f.setToken(mallory, attacker, "alice/demo", "glrt-"+randomLetters(24))
		st, ok := intact()
		return describe(r) + "\n" + st, r.Code != 0 && ok
	})
	tb.run(t)

	for _, where := range []struct{ name, text string }{
		{"runner status --json", s.mustRun(t, alice, victim, "runner", "status", "--json")},
		{"runner logs", s.run(t, alice, victim, "runner", "logs").Stdout},
		{"the runner container's engine config", fmt.Sprintf("%+v", s.engineInspect(t, runnerCtr).Config)},
	} {
		checkNoSecret(t, where.text, where.name, token, mToken)
	}
	for _, p := range []string{f.runnerDir(victim, "alice-demo"), filepath.Join(f.runnerDir(victim, "alice-demo"), "config.toml")} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %v, mode %v; want nothing for group or others", p, err, fi.Mode())
		}
	}
	s.stop(t)
	checkNoSecret(t, s.Log(), "the server's log", token, mToken)
	audit, _ := os.ReadFile(s.auditPath())
	checkNoSecret(t, string(audit), "the audit log", token, mToken)
	t.Logf("runner attack table: %d rows; %d do not hold", len(tb.rows), len(tb.failed))
	for _, line := range tb.failed {
		t.Logf("  %s", line)
	}
}
