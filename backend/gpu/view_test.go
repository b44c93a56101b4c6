package gpu

import (
	"testing"
	"time"

	"whalemountain/backend"
)

func busyState(t *testing.T) State {
	t.Helper()
	srv, root := busyServer(t)
	s := New(srv, owners, Options{ProcRoot: root, Now: func() time.Time { return time.Unix(1, 0) }})
	defer s.Close()
	s.sample()
	return s.snapshot()
}

func TestViewStudentSeesOnlyOwnProcessesInFull(t *testing.T) {
	st := busyState(t)
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	v := view(st, alice)
	if v.Users != nil {
		t.Errorf("student got a user summary: %+v", v.Users)
	}
	if len(v.GPUs) != 8 {
		t.Fatalf("student sees %d GPUs, want all 8", len(v.GPUs))
	}
	procs := v.GPUs[0].Processes
	if len(procs) != 5 {
		t.Fatalf("%d processes on GPU 0", len(procs))
	}
	own := procs[0]
	if own.PID != 100 || own.Owner != "alice" || own.ContainerName != "jupyter" || own.ContainerID != aliceID || own.Where != WhereContainer {
		t.Errorf("own process not in full: %s", fmtProc(own))
	}
	for _, p := range procs[1:] {
		if p.Where != WhereHidden || p.PID != 0 || p.Owner != "" || p.ContainerName != "" || p.ContainerID != "" {
			t.Errorf("another user's process leaks: %s", fmtProc(p))
		}
	}
	if procs[1].MemUsed == nil || *procs[1].MemUsed != gib {
		t.Errorf("hidden process lost its memory: %s", fmtProc(procs[1]))
	}
	if p := v.GPUs[3].Processes[0]; p.Owner != "alice" || p.PID != 101 {
		t.Errorf("own process on GPU 3: %s", fmtProc(p))
	}

	// Bob sees alice's processes hidden, and the input state is untouched.
	bob := view(st, backend.Identity{User: "bob", Role: backend.RoleStudent})
	if p := bob.GPUs[0].Processes[0]; p.Where != WhereHidden || p.Owner != "" {
		t.Errorf("bob sees alice's process: %s", fmtProc(p))
	}
	if p := bob.GPUs[0].Processes[1]; p.Owner != "bob" {
		t.Errorf("bob's own process: %s", fmtProc(p))
	}
	if st.GPUs[0].Processes[0].Owner != "alice" {
		t.Error("view changed its input")
	}

	// Nobody (the zero Identity) sees no one's processes.
	for _, p := range view(st, backend.Identity{}).GPUs[0].Processes {
		if p.Where != WhereHidden {
			t.Errorf("zero identity sees %s", fmtProc(p))
		}
	}
	// A student named like nobody does not match processes without an owner.
	for _, p := range view(st, backend.Identity{User: "", Role: backend.RoleStudent}).GPUs[0].Processes {
		if p.Where != WhereHidden {
			t.Errorf("empty user sees %s", fmtProc(p))
		}
	}
}

func TestViewTASeesEverythingAndSummary(t *testing.T) {
	st := busyState(t)
	v := view(st, backend.Identity{User: "tanaka", Role: backend.RoleTA})
	checkProcesses(t, v.GPUs[0].Processes, st.GPUs[0].Processes)
	if len(v.Users) != 2 {
		t.Fatalf("summary %+v, want alice and bob", v.Users)
	}
	a, b := v.Users[0], v.Users[1]
	if a.User != "alice" || len(a.GPUs) != 2 || a.GPUs[0] != 0 || a.GPUs[1] != 3 || a.MemUsed != 28*gib ||
		a.MeanUtil == nil || *a.MeanUtil != 15 {
		t.Errorf("alice: %+v (mean %v)", a, deref(a.MeanUtil))
	}
	if b.User != "bob" || len(b.GPUs) != 1 || b.GPUs[0] != 0 || b.MemUsed != gib || b.MeanUtil == nil || *b.MeanUtil != 0 {
		t.Errorf("bob: %+v (mean %v)", b, deref(b.MeanUtil))
	}
}

func TestViewUnavailable(t *testing.T) {
	st := State{Reason: ReasonNoDriver}
	v := view(st, backend.Identity{User: "alice", Role: backend.RoleStudent})
	if v.Available || v.Reason != ReasonNoDriver || len(v.GPUs) != 0 {
		t.Errorf("%+v", v)
	}
}
