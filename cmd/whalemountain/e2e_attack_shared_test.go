package main

// The attack suite's rows for shared data (door "shared data"): the site's read-only
// datasets (one for everyone, one for TAs only) and the workspace of a group alice is in
// and mallory is not. mallory tries to read and write them through her own container, sftp
// path tricks, the Docker API (binds of the datasets' host paths, the workspace's volume
// by its engine name), and a write into a dataset from inside a container.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"whalemountain/backend/docker"
)

const sharedDoor = "shared data"

// sharedConfig makes the datasets' directories and returns the config lines that mount
// them and make alice's group: course for everyone, staff for TAs, lab/team-a for alice.
func (f *attackFixture) sharedConfig() string {
	t := f.t
	f.courseDir, f.staffDir = filepath.Join(f.dir, "course"), filepath.Join(f.dir, "staff")
	f.staffSecret = "STAFF-SECRET-" + randomLetters(16)
	f.groupSecret = "GROUP-SECRET-" + randomLetters(16)
	for dir, file := range map[string]string{f.courseDir: "readme.txt\nCOURSE-README\n", f.staffDir: "secret.txt\n" + f.staffSecret + "\n"} {
		name, body, _ := strings.Cut(file, "\n")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf("datasets:\n  - name: course\n    host_path: %s\n  - name: staff\n    host_path: %s\n    roles: [ta]\n"+
		"groups:\n  - group: lab/team-a\n    members: [alice]\n", f.courseDir, f.staffDir)
}

// sharedSetUp puts alice's plan into her group's workspace (from her box) and finds the
// workspace's volume on the engine.
func (f *attackFixture) sharedSetUp() {
	t := f.t
	f.s.mustRun(t, f.alice, "alice", "exec", "box", "--", "sh", "-c", "echo "+f.groupSecret+" > /groups/lab/team-a/plan.txt")
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	flt := client.Filters{}.Add("label", docker.LabelKind+"="+docker.KindGroup).Add("label", docker.LabelName+"=lab/team-a")
	for k, v := range f.s.labels {
		flt.Add("label", k+"="+v)
	}
	vs, err := f.s.cli.VolumeList(ctx, client.VolumeListOptions{Filters: flt})
	if err != nil || len(vs.Items) != 1 {
		t.Fatalf("the workspace volume of lab/team-a: %v %+v", err, vs.Items)
	}
	f.groupVol = vs.Items[0].Name
}

func (f *attackFixture) sharedRows(tb *attackTable) {
	local := filepath.Join(f.dir, "got-shared")
	payload := filepath.Join(f.dir, "payload-shared")
	if err := os.WriteFile(payload, []byte("MALLORY-PAYLOAD\n"), 0o600); err != nil {
		f.t.Fatal(err)
	}
	noFile := func(sshResult) string {
		if b, err := os.ReadFile(local); err == nil {
			_ = os.Remove(local)
			return fmt.Sprintf("a file arrived: %q", clip(string(b), 200))
		}
		return ""
	}
	ctlGroup := "lab/" + f.ctl
	pairs := [][2]string{{ctlGroup, "lab/team-a"}, {f.ctl, "team-a"}}

	// sftp: every path to the workspace of a group mallory is not in reads as one that does
	// not exist; so does the TAs' dataset.
	for _, p := range []struct{ what, tgt, ctl string }{
		{"workspace file", "/groups/lab/team-a/plan.txt", "/groups/" + ctlGroup + "/plan.txt"},
		{"upper case", "/groups/LAB/TEAM-A/plan.txt", "/groups/LAB/" + strings.ToUpper(f.ctl) + "/plan.txt"},
		{"traversal", "/groups/lab/../lab/team-a/plan.txt", "/groups/lab/../" + ctlGroup + "/plan.txt"},
		{"from the home", "/home/../groups/lab/team-a/plan.txt", "/home/../groups/" + ctlGroup + "/plan.txt"},
		{"from a dataset", "/datasets/course/../../groups/lab/team-a/plan.txt", "/datasets/course/../../groups/" + ctlGroup + "/plan.txt"},
		{"encoded slash", "/groups/lab%2fteam-a/plan.txt", "/groups/lab%2f" + f.ctl + "/plan.txt"},
		{"engine volume name", "/groups/" + f.groupVol + "/plan.txt", "/groups/" + strings.Replace(f.groupVol, "team-a", f.ctl, 1) + "/plan.txt"},
		{"TAs' dataset", "/datasets/staff/secret.txt", "/datasets/" + f.ctl + "/secret.txt"},
		{"TAs' dataset by traversal", "/datasets/course/../staff/secret.txt", "/datasets/course/../" + f.ctl + "/secret.txt"},
		{"dataset by host path", "/datasets" + f.staffDir + "/secret.txt", "/datasets" + filepath.Join(filepath.Dir(f.staffDir), f.ctl) + "/secret.txt"},
	} {
		tb.equivRow(sharedDoor+" sftp get", "mallory", p.tgt+"   ["+p.what+"]", p.ctl, func(t *testing.T, control bool) sshResult {
			remote := p.tgt
			if control {
				remote = p.ctl
			}
			_ = os.Remove(local)
			return f.s.sftpBatch(t, f.mallory, "mallory", "get "+remote+" "+local)
		}, append([][2]string{{p.ctl, p.tgt}}, sharedPairs(p.tgt, f.ctl, pairs)...), noFile)
	}
	for _, cmd := range []struct{ tgt, ctl string }{
		{"put " + payload + " /groups/lab/team-a/pwned", "put " + payload + " /groups/" + ctlGroup + "/pwned"},
		{"mkdir /groups/lab/team-a/x", "mkdir /groups/" + ctlGroup + "/x"},
		{"rm /groups/lab/team-a/plan.txt", "rm /groups/" + ctlGroup + "/plan.txt"},
		{"ls -l /groups/lab/team-a", "ls -l /groups/" + ctlGroup},
		{"ls -l /datasets/staff", "ls -l /datasets/" + f.ctl},
		{"ln -s /groups/lab/team-a /home/teamlink", "ln -s /groups/" + ctlGroup + " /home/teamlink"},
	} {
		ps := append([][2]string{{cmd.ctl, cmd.tgt}}, pairs...)
		if strings.Contains(cmd.tgt, "/datasets/") {
			ps = [][2]string{{cmd.ctl, cmd.tgt}, {f.ctl, "staff"}}
		}
		tb.equivRow(sharedDoor+" sftp", "mallory", cmd.tgt, cmd.ctl, func(t *testing.T, control bool) sshResult {
			if control {
				return f.s.sftpBatch(t, f.mallory, "mallory", cmd.ctl)
			}
			return f.s.sftpBatch(t, f.mallory, "mallory", cmd.tgt)
		}, ps, nil)
	}
	for _, cmd := range []string{"ls -la /groups", "ls -la /datasets", "ls -la /"} {
		tb.add(sharedDoor+" sftp", "mallory", cmd, "nothing of team-a or of the TAs' dataset", func(t *testing.T) (string, bool) {
			r := f.s.sftpBatch(t, f.mallory, "mallory", cmd)
			out := strings.ReplaceAll(r.Stdout, "sftp> "+cmd, "")
			return describe(r), !strings.Contains(out, "team-a") && !strings.Contains(out, "staff") && !strings.Contains(out, "lab")
		})
	}
	// Another student's home under /users (TAs only, and off here): as for nobody's.
	for _, c := range []struct {
		actor string
		conn  *testKey
	}{{"mallory", f.mallory}, {"tanaka", f.tanaka}} {
		tb.equivRow(sharedDoor+" sftp get", c.actor, "/users/alice/home/secret.txt", "/users/"+f.ctlUser+"/home/secret.txt",
			func(t *testing.T, control bool) sshResult {
				u := "alice"
				if control {
					u = f.ctlUser
				}
				_ = os.Remove(local)
				return f.s.sftpBatch(t, c.conn, c.actor, "get /users/"+u+"/home/secret.txt "+local)
			}, [][2]string{{f.ctlUser, "alice"}}, noFile)
	}

	// The dataset she may see: readable, and no way of changing it.
	tb.add(sharedDoor+" sftp", "mallory", "get /datasets/course/readme.txt", "works (the dataset is hers to read)", func(t *testing.T) (string, bool) {
		_ = os.Remove(local)
		r := f.s.sftpBatch(t, f.mallory, "mallory", "get /datasets/course/readme.txt "+local)
		b, _ := os.ReadFile(local)
		_ = os.Remove(local)
		return describe(r), r.Code == 0 && string(b) == "COURSE-README\n"
	})
	for _, cmd := range []string{
		"put " + payload + " /datasets/course/pwned", "put " + payload + " /datasets/course/readme.txt",
		"rm /datasets/course/readme.txt", "mkdir /datasets/course/x", "rename /datasets/course/readme.txt /datasets/course/moved",
		"chmod 777 /datasets/course/readme.txt", "rename /datasets/course/readme.txt /home/stolen", "mkdir /datasets/new",
		"ln -s /home /datasets/course/homelink",
	} {
		tb.add(sharedDoor+" sftp", "mallory", cmd, "refused; the dataset on the host as it was", func(t *testing.T) (string, bool) {
			r := f.s.sftpBatch(t, f.mallory, "mallory", cmd)
			return describe(r) + "; " + f.courseState(), r.Code != 0 && f.courseState() == "intact"
		})
	}

	// Her own container: the workspace is not there, the TAs' dataset is not there, the
	// course dataset cannot be written even by root.
	for _, script := range []string{
		"cat /groups/lab/team-a/plan.txt; ls -laR /groups",
		"cat /datasets/staff/secret.txt; ls -la /datasets",
		"find / -xdev -name plan.txt 2>/dev/null; grep -r " + f.groupSecret[:12] + " /home /tmp /datasets 2>/dev/null",
		"cat /proc/self/mountinfo",
	} {
		tb.add(sharedDoor+" cli exec", "mallory", "exec mwork -- sh -c "+strconvQuote(script), "nothing of team-a's or the TAs' data", func(t *testing.T) (string, bool) {
			r := f.s.run(t, f.mallory, "mallory", "exec", "mwork", "--", "sh", "-c", script)
			out := r.Stdout + r.Stderr
			return describe(r), !strings.Contains(out, f.groupSecret) && !strings.Contains(out, f.staffSecret) && !strings.Contains(out, f.groupVol)
		})
	}
	for _, script := range []string{
		"touch /datasets/course/pwned", "rm -f /datasets/course/readme.txt", "echo x >> /datasets/course/readme.txt",
		"mount -o remount,rw /datasets/course && touch /datasets/course/pwned", "mkdir /datasets/course/x",
		"umount /datasets/course && touch /datasets/course/pwned",
	} {
		tb.add(sharedDoor+" cli exec", "mallory", "exec mwork -- sh -c "+strconvQuote(script), "fails; the dataset on the host as it was", func(t *testing.T) (string, bool) {
			r := f.s.run(t, f.mallory, "mallory", "exec", "mwork", "--", "sh", "-c", script)
			return describe(r) + "; " + f.courseState(), r.Code != 0 && f.courseState() == "intact"
		})
	}
	// Into the dataset through her own container's tree: the engine's archive API refuses a
	// read-only mount too.
	tb.add(sharedDoor+" sftp", "mallory", "put "+payload+" /containers/mwork/datasets/course/pwned", "refused; the dataset on the host as it was",
		func(t *testing.T) (string, bool) {
			r := f.s.sftpBatch(t, f.mallory, "mallory", "put "+payload+" /containers/mwork/datasets/course/pwned")
			return describe(r) + "; " + f.courseState(), r.Code != 0 && f.courseState() == "intact"
		})
	tb.add(sharedDoor+" "+apiDoor, "mallory", "docker cp PAYLOAD mwork:/datasets/course/", "refused; the dataset on the host as it was",
		func(t *testing.T) (string, bool) {
			r := dcliOf(t, f, "cp", payload, "mwork:/datasets/course/")
			return describe(r) + "; " + f.courseState(), r.Code != 0 && f.courseState() == "intact"
		})

	// run with the workspace's volume or a dataset's host path.
	for _, args := range [][]string{
		{"run", "--name", "s1", "-v", f.groupVol + ":/g", f.img},
		{"run", "--name", "s2", "-v", f.courseDir + ":/d", f.img},
		{"run", "--name", "s3", "--mount", "type=bind,src=" + f.staffDir + ",dst=/d,readonly", f.img},
		{"run", "--name", "s4", "--label", docker.LabelGroups + "=lab/team-a", f.img},
	} {
		tb.add(sharedDoor+" cli run", "mallory", shownArgs(args), "refused, and no container made", func(t *testing.T) (string, bool) {
			before := len(f.s.engineContainers(t, "", ""))
			r := f.s.run(t, f.mallory, "mallory", args...)
			after := len(f.s.engineContainers(t, "", ""))
			return describe(r), r.Code != 0 && after == before
		})
	}

	// A restart policy would let the engine start alice's container with the group's
	// workspace without the server's membership check: refused to her, a member.
	ad := newDockerCLI(f.t, f.s.server, f.alice, "alice")
	for _, policy := range []string{"on-failure:3", "always"} {
		args := []string{"create", "--name", "rp", "--restart", policy, f.img}
		tb.add(sharedDoor+" "+apiDoor, "alice", "docker "+shownArgs(args)+" (she has a group workspace)", "refused in one line, and no container made",
			func(t *testing.T) (string, bool) {
				before := len(f.s.engineContainers(t, "", ""))
				r := (&dockerCLI{t: t, dir: ad.dir, env: ad.env}).run(args...)
				after := len(f.s.engineContainers(t, "", ""))
				return describe(r), r.Code != 0 && after == before && strings.Contains(r.Stderr, "--restart")
			})
	}

	// The Docker API: binds of the datasets' host paths are refused; the workspace's volume
	// by its engine name is a volume of her own (empty), never the group's.
	d := newDockerCLI(f.t, f.s.server, f.mallory, "mallory")
	dcli := func(t *testing.T, args ...string) sshResult {
		dc := &dockerCLI{t: t, dir: d.dir, env: d.env}
		return dc.run(args...)
	}
	for _, args := range [][]string{
		{"run", "--rm", "-v", f.courseDir + ":/d", f.img, "ls", "/d"},
		{"run", "--rm", "-v", f.staffDir + ":/d:ro", f.img, "cat", "/d/secret.txt"},
		{"run", "--rm", "--mount", "type=bind,src=" + f.staffDir + ",dst=/d,readonly", f.img, "cat", "/d/secret.txt"},
		{"run", "--rm", "-v", filepath.Dir(f.staffDir) + ":/d", f.img, "cat", "/d/staff/secret.txt"},
		{"run", "--rm", "-v", "x:/datasets/course", f.img, "true"},
		{"run", "--rm", "--tmpfs", "/datasets/course", f.img, "true"},
		{"run", "--rm", "--mount", "type=volume,dst=/datasets/course", f.img, "true"},
		{"create", "-v", f.courseDir + ":/datasets/course:rw", f.img},
	} {
		tb.add(sharedDoor+" "+apiDoor, "mallory", "docker "+shownArgs(args), "refused: no host path, nothing over a dataset", func(t *testing.T) (string, bool) {
			before := len(f.s.engineContainers(t, "", ""))
			r := dcli(t, args...)
			after := len(f.s.engineContainers(t, "", ""))
			return describe(r), r.Code != 0 && after == before && !strings.Contains(r.Stdout+r.Stderr, f.staffSecret)
		})
	}
	for _, args := range [][]string{
		{"run", "--rm", "-v", f.groupVol + ":/g", f.img, "sh", "-c", "cat /g/plan.txt; ls -la /g"},
		{"run", "--rm", "--mount", "type=volume,src=" + f.groupVol + ",dst=/g", f.img, "sh", "-c", "cat /g/plan.txt"},
		{"run", "--rm", "-v", "lab/team-a:/g", f.img, "cat", "/g/plan.txt"},
		{"volume", "inspect", "--format", "{{.Labels}}", f.groupVol},
		{"volume", "ls", "--format", "{{.Name}} {{.Labels}}"},
		{"run", "--rm", f.img, "sh", "-c", "echo x > /datasets/course/pwned"},
	} {
		tb.add(sharedDoor+" "+apiDoor, "mallory", "docker "+shownArgs(args),
			"nothing of team-a's (a volume of that name is her own, empty); the dataset as it was", func(t *testing.T) (string, bool) {
				r := dcli(t, args...)
				out := r.Stdout + r.Stderr
				return describe(r) + "; " + f.courseState(), !strings.Contains(out, f.groupSecret) && f.courseState() == "intact" &&
					!strings.Contains(out, "kind:group") && !(args[0] == "volume" && strings.Contains(out, "lab/team-a"))
			})
	}
	tb.add(sharedDoor+" "+apiDoor, "mallory", "POST /containers/create with HostConfig.Binds of the TAs' dataset", "403, nothing made",
		func(t *testing.T) (string, bool) {
			body := fmt.Sprintf(`{"Image":%q,"HostConfig":{"Binds":[%q]}}`, f.img, f.staffDir+":/d:ro")
			got, err := rawAPI(f.mc, "", "POST", "/v1.41/containers/create", body)
			if err != nil {
				return err.Error(), false
			}
			return got, strings.HasPrefix(got, "403")
		})
	tb.add(sharedDoor+" "+apiDoor, "mallory", "docker volume rm "+f.groupVol, "the workspace and alice's plan stay", func(t *testing.T) (string, bool) {
		r := dcli(t, "volume", "rm", f.groupVol)
		rr := f.s.run(t, f.alice, "alice", "exec", "box", "--", "cat", "/groups/lab/team-a/plan.txt")
		kept := rr.Code == 0 && strings.Contains(rr.Stdout, f.groupSecret)
		return describe(r) + fmt.Sprintf("; alice still reads her plan: %v", kept), kept
	})

	// What the others see: alice her group, the TA every group and both datasets.
	tb.add(sharedDoor+" cli", "mallory", "groups --json; datasets --json", "no team-a, no staff", func(t *testing.T) (string, bool) {
		a := f.goRun(f.mc, false, "groups", "--json")
		b := f.goRun(f.mc, false, "datasets", "--json")
		out := a.Stdout + b.Stdout
		return describe(a) + "; " + describe(b), a.Code == 0 && b.Code == 0 && !strings.Contains(out, "team-a") &&
			!strings.Contains(out, "staff") && strings.Contains(out, "course")
	})
	tb.add(sharedDoor+" cli", "alice", "groups", "lab/team-a, alice its member", func(t *testing.T) (string, bool) {
		r := f.goRun(f.ac, false, "groups")
		return describe(r), r.Code == 0 && strings.Contains(r.Stdout, "lab/team-a") && strings.Contains(r.Stdout, "alice")
	})
	tb.add(sharedDoor+" cli", "tanaka", "datasets", "course and staff, with their sources", func(t *testing.T) (string, bool) {
		r := f.goRun(f.tc, false, "datasets")
		return describe(r), r.Code == 0 && strings.Contains(r.Stdout, "staff") && strings.Contains(r.Stdout, f.staffDir)
	})
}

// courseState is "intact" when the course dataset on the host holds exactly its readme.
func (f *attackFixture) courseState() string {
	es, err := os.ReadDir(f.courseDir)
	if err != nil {
		return err.Error()
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	b, _ := os.ReadFile(filepath.Join(f.courseDir, "readme.txt"))
	if len(names) != 1 || names[0] != "readme.txt" || string(b) != "COURSE-README\n" {
		return fmt.Sprintf("changed: %v, readme %q", names, b)
	}
	return "intact"
}

// dcliOf runs the docker CLI as mallory against f's server.
func dcliOf(t *testing.T, f *attackFixture, args ...string) sshResult {
	d := newDockerCLI(t, f.s.server, f.mallory, "mallory")
	return d.run(args...)
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

// sharedPairs are the substitutions for a control path: the dataset's name or the group's.
func sharedPairs(tgt, ctl string, groupPairs [][2]string) [][2]string {
	if strings.Contains(tgt, "/datasets/") {
		return [][2]string{{ctl, "staff"}}
	}
	return groupPairs
}
