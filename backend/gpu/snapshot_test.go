package gpu

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"whalemountain/backend"
)

// busySampler is a sampler over busyServer that has taken one sample.
func busySampler(t *testing.T) *Sampler {
	t.Helper()
	srv, root := busyServer(t)
	s := New(srv, owners, Options{ProcRoot: root, Now: func() time.Time { return time.Unix(1, 0) }})
	t.Cleanup(s.Close)
	s.sample()
	return s
}

var pidField = regexp.MustCompile(`"pid":\s*(\d+)`)

// TestSnapshotStudentNeverSeesOthers reads the sampler as each student, as nobody and as
// identities that are not valid, and looks for anything of another user anywhere in the
// result, typed and as the JSON the CLI prints.
func TestSnapshotStudentNeverSeesOthers(t *testing.T) {
	s := busySampler(t)
	// What belongs to whom in busyServer.
	type who struct {
		pids                     []string
		containerID, name, owner string
	}
	everyone := map[string]who{
		"alice": {[]string{"100", "101"}, aliceID, "jupyter", "alice"},
		"bob":   {[]string{"200"}, bobID, "train", "bob"},
		"other": {[]string{"300"}, otherID, "", ""},
		"host":  {[]string{"400"}, "", "", ""},
	}
	cases := []struct {
		id  backend.Identity
		own string // key in everyone, "" for none
	}{
		{backend.Identity{User: "alice", Role: backend.RoleStudent}, "alice"},
		{backend.Identity{User: "bob", Role: backend.RoleStudent}, "bob"},
		{backend.Identity{User: "carol", Role: backend.RoleStudent}, ""},
		{backend.Identity{}, ""},
		{backend.Identity{Role: backend.RoleStudent}, ""},                  // no user
		{backend.Identity{User: "alice"}, ""},                              // no role
		{backend.Identity{User: "alice", Role: backend.Role("admin")}, ""}, // unknown role
		{backend.Identity{Role: backend.RoleTA}, ""},                       // a TA role without a user
	}
	for _, tc := range cases {
		st := s.Snapshot(tc.id)
		if !st.Available || len(st.GPUs) != 8 {
			t.Fatalf("%v: available %v, %d GPUs; every GPU must be shown", tc.id, st.Available, len(st.GPUs))
		}
		if st.Users != nil {
			t.Errorf("%v got the per-user summary: %+v", tc.id, st.Users)
		}
		own := 0
		for _, g := range st.GPUs {
			for _, p := range g.Processes {
				if tc.own != "" && p.Owner == tc.own {
					own++
					if p.PID == 0 || p.ContainerID != everyone[tc.own].containerID || p.Where != WhereContainer {
						t.Errorf("%v: own process not in full: %s", tc.id, fmtProc(p))
					}
					continue
				}
				if p != (Process{MemUsed: p.MemUsed, Where: WhereHidden}) {
					t.Errorf("%v sees more than the memory of a process not theirs: %s", tc.id, fmtProc(p))
				}
			}
		}
		if want := len(everyone[tc.own].pids); tc.own != "" && own != want {
			t.Errorf("%v sees %d own processes, want %d", tc.id, own, want)
		}
		if hidden := st.GPUs[0].Processes; len(hidden) != 5 {
			t.Errorf("%v sees %d processes on GPU 0, want 5 (hidden or not)", tc.id, len(hidden))
		}

		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for name, w := range everyone {
			if name == tc.own {
				continue
			}
			for _, leak := range []string{w.containerID, w.name, w.owner} {
				if leak != "" && strings.Contains(text, leak) {
					t.Errorf("%v: the JSON holds %q of %s", tc.id, leak, name)
				}
			}
		}
		for _, m := range pidField.FindAllStringSubmatch(text, -1) {
			if tc.own == "" || !slices.Contains(everyone[tc.own].pids, m[1]) {
				t.Errorf("%v: the JSON holds PID %s, not theirs", tc.id, m[1])
			}
		}
	}

	// Reading as students cut down copies only: a TA still sees everything afterwards.
	ta := s.Snapshot(backend.Identity{User: "tanaka", Role: backend.RoleTA})
	checkProcesses(t, ta.GPUs[0].Processes, s.snapshot().GPUs[0].Processes)
	if len(ta.Users) != 2 || ta.Users[0].User != "alice" || ta.Users[1].User != "bob" {
		t.Errorf("TA summary %+v, want alice and bob", ta.Users)
	}
	if p := ta.GPUs[0].Processes[1]; p.PID != 200 || p.Owner != "bob" || p.ContainerName != "train" {
		t.Errorf("TA does not see bob's process in full: %s", fmtProc(p))
	}
}

// TestSnapshotIsTheOnlyWayOut checks the package's exported API: whatever hands out a State
// must take the reader's identity, so that no caller (a user interface above all) can obtain
// an unfiltered sample or need a filter of its own.
func TestSnapshotIsTheOnlyWayOut(t *testing.T) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || !fn.Name.IsExported() || !mentions(fn.Type.Results, "State") {
				continue
			}
			checked++
			recv := ""
			if fn.Recv != nil {
				recv = exprString(fn.Recv.List[0].Type)
			}
			if recv == "State" && fn.Name.Name == "Clone" {
				continue // copies a State its caller already holds
			}
			if !mentions(fn.Type.Params, "backend.Identity") {
				t.Errorf("%s: %s.%s returns a State without taking the reader's identity", fset.Position(fn.Pos()), recv, fn.Name.Name)
			}
		}
	}
	if checked < 2 { // Snapshot and Clone at least
		t.Fatalf("found %d exported functions returning State: the check looks in the wrong place", checked)
	}
}

func mentions(fl *ast.FieldList, typ string) bool {
	if fl == nil {
		return false
	}
	for _, f := range fl.List {
		if strings.Contains(exprString(f.Type), typ) {
			return true
		}
	}
	return false
}

func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.StarExpr:
		return "*" + exprString(e.X)
	case *ast.SelectorExpr:
		return exprString(e.X) + "." + e.Sel.Name
	case *ast.ArrayType:
		return "[]" + exprString(e.Elt)
	case *ast.MapType:
		return "map[" + exprString(e.Key) + "]" + exprString(e.Value)
	default:
		return "?"
	}
}
