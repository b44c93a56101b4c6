package main

// End-to-end tests of the TA's console through the real door: who is connected (a TA sees
// everyone, a student themselves), the audit log (a student reads their own entries only),
// wall reaching an open dashboard (read through the VT emulator) and kept as a notice.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

func TestE2EConsole(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	s := startContainerServer(t, cli, img, containerPrefix("w"), ctrOptions{Top: "tas: [tina]\n"})
	alice, bob, tina := newKey(t, "alice"), newKey(t, "bob"), newKey(t, "tina")
	s.addKey(t, "alice", alice)
	s.addKey(t, "bob", bob)
	s.addKey(t, "tina", tina)
	s.mustRun(t, alice, "alice", "run", "--name", "abox", img)
	s.mustRun(t, bob, "bob", "run", "--name", "bbox", img)

	at := s.openDashboard(t, alice, "alice", "student", 80, 24)
	bt := s.openDashboard(t, bob, "bob", "student", 80, 24)

	type session struct{ User, Role, From, What string }
	who := func(key *testKey, user string) []session {
		t.Helper()
		var out []session
		if err := json.Unmarshal([]byte(s.mustRun(t, key, user, "who", "--json")), &out); err != nil {
			t.Fatalf("who --json of %s: %v", user, err)
		}
		return out
	}
	has := func(list []session, user, what string) bool {
		for _, e := range list {
			if e.User == user && strings.HasPrefix(e.What, what) && e.From != "" {
				return true
			}
		}
		return false
	}
	ta := who(tina, "tina")
	if !has(ta, "alice", "dashboard") || !has(ta, "bob", "dashboard") || !has(ta, "tina", "command who") {
		t.Errorf("the TA's who does not list both students' dashboards and the TA's own command: %+v", ta)
	}
	for _, e := range who(alice, "alice") {
		if e.User != "alice" {
			t.Errorf("alice's who lists %s's session: %+v", e.User, e)
		}
	}
	if out := s.mustRun(t, tina, "tina", "who"); !strings.Contains(out, "USER") || !strings.Contains(out, "bob") {
		t.Errorf("the TA's who table:\n%s", out)
	}

	// The audit log: the TA reads everyone's, filtered; a student their own only.
	type entry struct{ User, Action, Target, Result string }
	auditOf := func(key *testKey, user string, args ...string) []entry {
		t.Helper()
		var out []entry
		for _, l := range strings.Split(strings.TrimSpace(s.mustRun(t, key, user, append([]string{"audit", "--json"}, args...)...)), "\n") {
			var e entry
			if l == "" {
				continue
			}
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("audit --json line %q: %v", l, err)
			}
			out = append(out, e)
		}
		return out
	}
	bobRuns := auditOf(tina, "tina", "--user", "bob", "--action", "run", "--since", "1h")
	if len(bobRuns) != 1 || bobRuns[0].Target != "bob/bbox" || bobRuns[0].Result != "ok" {
		t.Errorf("the TA's audit --user bob --action run: %+v", bobRuns)
	}
	mine := auditOf(alice, "alice")
	if len(mine) == 0 {
		t.Errorf("alice reads none of her own audit entries")
	}
	for _, e := range mine {
		if e.User != "alice" {
			t.Errorf("alice reads %s's audit entry: %+v", e.User, e)
		}
	}
	if r := s.run(t, alice, "alice", "audit", "--user", "bob"); r.Code == 0 || strings.Contains(r.Stdout, "bob") {
		t.Errorf("alice's audit --user bob: want a refusal and nothing of bob's\n%s", r)
	}

	// wall: a banner on every open dashboard until dismissed, a notice for later, audited.
	if r := s.run(t, alice, "alice", "wall", "hello"); r.Code == 0 {
		t.Errorf("a student's wall was accepted:\n%s", r)
	}
	if out := s.mustRun(t, tina, "tina", "wall", "the server restarts at 18:00"); !strings.Contains(out, "sent to") {
		t.Errorf("wall said %q", out)
	}
	for _, tm := range []*terminal{at, bt} {
		tm.waitText("Message from tina (TA)", "the server restarts at 18:00", "x dismiss")
	}
	at.send("x")
	at.waitGone("the server restarts at 18:00")
	if out := s.mustRun(t, alice, "alice", "notices"); !strings.Contains(out, "message from tina (TA): the server restarts at 18:00") {
		t.Errorf("alice's notices do not hold the wall:\n%s", out)
	}
	if w := auditOf(tina, "tina", "--action", "wall"); len(w) != 1 || w[0].User != "tina" {
		t.Errorf("the wall is not audited once: %+v", w)
	}

	// The Class tab: both students with their containers and sessions, changing as they log
	// out and in (nothing polls: the door tells the tab); enter opens one's containers.
	tt := s.openDashboard(t, tina, "tina", "ta", 100, 30)
	tt.send("6")
	rowIs := func(user string, cells ...string) func([]string) bool {
		return func(ls []string) bool { return tableRow(ls, append([]string{user}, cells...)...) != nil }
	}
	tt.waitScreen("alice and bob with a session and a running container each", func(ls []string) bool {
		return screenHas(ls, "USER", "SESSIONS") && rowIs("alice", "1", "1/1")(ls) && rowIs("bob", "1", "1/1")(ls)
	})
	quit := func(tm *terminal) {
		tm.send("q")
		if code := tm.waitExit(sshTimeout); code != 0 {
			t.Errorf("ssh exited %d after q", code)
		}
	}
	quit(bt)
	tt.waitScreen("bob logged out", rowIs("bob", "0", "1/1"))
	bt = s.openDashboard(t, bob, "bob", "student", 80, 24)
	tt.waitScreen("bob back", rowIs("bob", "1", "1/1"))
	tt.send("\r") // alice's row is the first, by user
	lines := tt.waitText("owner:alice", "abox")
	if screenHas(lines, "bbox") {
		t.Errorf("enter on alice's row shows bob's container:\n%s", tt.dump())
	}
	for _, tm := range []*terminal{at, bt, tt} {
		quit(tm)
	}
}

// TestE2EPresets: a preset makes the container the config describes (as the engine sees
// it), labelled with the preset's name; a student cannot use a preset offered to TAs only
// or to a group they are not in, and does not see it.
func TestE2EPresets(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	prefix := containerPrefix("p")
	top := fmt.Sprintf("tas: [tina]\npresets:\n"+
		"  - name: oslab\n    description: OS course lab\n    image: %s\n    cpus: 0.5\n    memory: 256m\n"+
		"    env: [COURSE=os]\n    command: [sleep, \"3600\"]\n"+
		"  - name: grading\n    image: %s\n    roles: [ta]\n"+
		"  - name: teama\n    image: %s\n    groups: [os-2026/team-a]\n"+
		"  - name: teamb\n    image: %s\n    groups: [os-2026/team-b]\n"+
		"groups:\n  - group: os-2026/team-a\n    members: [alice]\n  - group: os-2026/team-b\n    target: /teamb/{group}\n    members: [bob]\n", img, img, img, img)
	s := startContainerServer(t, cli, img, prefix, ctrOptions{Top: top})
	alice, tina := newKey(t, "alice"), newKey(t, "tina")
	s.addKey(t, "alice", alice)
	s.addKey(t, "tina", tina)

	var offered []struct{ Name string }
	if err := json.Unmarshal([]byte(s.mustRun(t, alice, "alice", "presets", "--json")), &offered); err != nil {
		t.Fatal(err)
	}
	if len(offered) != 2 || offered[0].Name != "oslab" || offered[1].Name != "teama" {
		t.Errorf("alice is offered %+v, want oslab and her group's teama only", offered)
	}
	if out := s.mustRun(t, tina, "tina", "presets"); !strings.Contains(out, "grading") || !strings.Contains(out, "oslab") {
		t.Errorf("the TA's presets:\n%s", out)
	}

	if out := s.mustRun(t, alice, "alice", "run", "--preset", "oslab", "--name", "lab1"); !strings.Contains(out, "lab1: created and started from preset oslab") {
		t.Errorf("run --preset said %q", out)
	}
	in := s.engineInspect(t, prefix+"-alice-lab1")
	switch {
	case in.Config.Image != img:
		t.Errorf("image %q, want %q", in.Config.Image, img)
	case in.HostConfig.NanoCPUs != 5e8 || in.HostConfig.Memory != 256<<20:
		t.Errorf("limits %d nano-CPUs, %d bytes; want 0.5 CPU, 256 MiB", in.HostConfig.NanoCPUs, in.HostConfig.Memory)
	case !slices.Contains(in.Config.Env, "COURSE=os"):
		t.Errorf("env %q lacks COURSE=os", in.Config.Env)
	case !slices.Equal(in.Config.Cmd, []string{"sleep", "3600"}):
		t.Errorf("command %q", in.Config.Cmd)
	case in.Config.Labels[docker.LabelPreset] != "oslab" || in.Config.Labels[docker.LabelOwner] != "alice":
		t.Errorf("labels %v", in.Config.Labels)
	case in.HostConfig.Privileged || !slices.Contains(in.HostConfig.SecurityOpt, "no-new-privileges:true"):
		t.Errorf("a preset's container is not hardened: privileged %v, security %v", in.HostConfig.Privileged, in.HostConfig.SecurityOpt)
	}
	// A plain run has the label too, empty.
	s.mustRun(t, alice, "alice", "run", "--name", "plain", img)
	if l, ok := s.engineInspect(t, prefix+"-alice-plain").Config.Labels[docker.LabelPreset]; !ok || l != "" {
		t.Errorf("a plain run's preset label: %q (set %v), want set and empty", l, ok)
	}

	before := len(s.psJSON(t, alice, "alice", "-a"))
	r := s.run(t, alice, "alice", "run", "--preset", "grading")
	if r.Code == 0 || !strings.Contains(r.Stderr, "no preset") {
		t.Errorf("alice ran the TAs' preset:\n%s", r)
	}
	if r := s.run(t, alice, "alice", "run", "--preset", "teamb"); r.Code == 0 || !strings.Contains(r.Stderr, `no preset "teamb" for you`) {
		t.Errorf("alice ran the preset of a group she is not in:\n%s", r)
	}
	if r := s.run(t, alice, "alice", "run", "--preset", "oslab", "--memory", "8g"); r.Code != 2 {
		t.Errorf("run --preset with --memory: want a usage error\n%s", r)
	}
	if after := len(s.psJSON(t, alice, "alice", "-a")); after != before {
		t.Errorf("refused preset runs made containers: %d before, %d after", before, after)
	}
	s.waitAudit(t, "the refused preset run", func(e auditEntry) bool {
		return e.User == "alice" && e.Action == "run" && e.Result == "refused"
	})

	// The dashboard's new-container form offers alice's preset first (not the TAs' one).
	at := s.openDashboard(t, alice, "alice", "student", 100, 30)
	at.waitText("lab1")
	at.send("n")
	lines := at.waitText("oslab · OS course lab", "custom container")
	if screenHas(lines, "grading") || screenHas(lines, "teamb") || !screenHas(lines, "teama") {
		t.Errorf("the form offers alice another role's or another group's preset, or not her group's:\n%s", at.dump())
	}
	at.send("\r")
	at.waitText("preset    oslab")
	at.send("viaform")
	time.Sleep(100 * time.Millisecond)
	at.send("\r")
	at.waitText("viaform: created and started")
	if l := s.engineInspect(t, prefix+"-alice-viaform").Config.Labels; l[docker.LabelPreset] != "oslab" || l[docker.LabelOwner] != "alice" {
		t.Errorf("the form's preset container: labels %v", l)
	}
	at.send("q")
	at.waitExit(sshTimeout)
}
