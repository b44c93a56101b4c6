package main

// Live help must not slow the student's shell down: the student's throughput (`cat` of a
// 20 MB file, as in BenchmarkShell) with 0, 1 and 5 TAs watching through the real ssh (the
// shell is shared from the start: its screen's emulator runs in every round), one of them
// with a terminal larger than the student's (the framed view), one of them on a link that
// reads nothing (it is dropped once it is a bounded amount behind; the
// student never waits for it).
//
//	go test -run '^$' -bench ShareFanOut ./cmd/whalemountain/

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"

	"whalemountain/backend/docker/dockertest"
)

func BenchmarkShareFanOut(b *testing.B) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		b.Fatalf("the OpenSSH client (ssh) is needed (apt-get install openssh-client): %v", err)
	}
	img, prefix := benchEngine(b, "fo")

	dir := b.TempDir()
	key := benchNewKey(b, dir, "id_ed25519")
	// The same configuration as benchServer's, with TAs (a later --config wins).
	tas := []string{"ta1", "ta2", "ta3", "ta4", "ta5"}
	cfg := filepath.Join(dir, "share.yaml")
	yaml := fmt.Sprintf("log_level: warn\ntas: [%s]\nlimits:\n  max_startups: 200:30:400\n  per_source_max_startups: 200\ndocker:\n  name_prefix: %s\n  stop_timeout: 2s\n  labels:\n    %s: %q\n    %s: %q\n",
		strings.Join(tas, ", "), prefix, dockertest.LabelRun, dockertest.RunID(), dockertest.LabelService, prefix)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	port, _ := benchServer(b, dir, prefix, key, append([]string{"alice"}, tas...), "--config", cfg)
	as := func(user string, flags []string, remote ...string) []string {
		return append([]string{sshBin}, localSSHArgs(port, key.path, user, flags, remote...)...)
	}
	benchRun(b, sshBin, as("alice", nil, "run", "--name", "box", img)[1:]...)
	benchRun(b, sshBin, as("alice", nil, "exec", "box", "--", "sh", "-c",
		fmt.Sprintf("'yes %s | head -c %d > %s'", strings.Repeat("w", 63), benchFileSize, benchFileInCtr))[1:]...)

	stu := benchOpen(b, "alice", as("alice", []string{"-tt"}, "shell", "box")...)
	stu.readUntil(b, benchPromptText, benchWait)
	benchRun(b, sshBin, as("alice", nil, "share", "box")[1:]...)

	rounds := func() float64 {
		var thr []float64
		for range benchRounds {
			thr = append(thr, stu.throughput(b))
		}
		return median(thr)
	}
	b.ResetTimer()
	figures := map[int]float64{0: rounds()}
	joined := 0
	for _, n := range []int{1, 5} {
		for ; joined < n; joined++ {
			v := benchOpen(b, tas[joined], as(tas[joined], []string{"-tt"}, "join", "alice")...)
			if joined == 1 { // larger than the student's terminal: the framed view, drawn from the emulator
				if err := pty.Setsize(v.ptmx, &pty.Winsize{Cols: benchCols + 40, Rows: benchRows + 16}); err != nil {
					b.Fatal(err)
				}
			}
			if joined == 4 {
				continue // the slow link: nothing reads what it is sent
			}
			go func() {
				for range v.out { // a viewer that keeps up
				}
			}()
		}
		figures[n] = rounds()
	}
	b.StopTimer()
	for _, n := range []int{0, 1, 5} {
		b.ReportMetric(figures[n], fmt.Sprintf("viewers%d-MB/s", n))
	}
	b.ReportMetric(figures[5]/figures[0], "5viewers/0viewers")
	b.Logf("\nstudent's cat of %d MB through ssh -tt shell box, median of %d rounds:\n  0 viewers %8.1f MB/s\n  1 viewer  %8.1f MB/s\n  5 viewers %8.1f MB/s (one on a link that reads nothing)",
		benchFileSize/1_000_000, benchRounds, figures[0], figures[1], figures[5])
}
