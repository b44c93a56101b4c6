package docker_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

// benchImageFiles is the content of the benchmark image: as many bytes of random data
// (which gzip cannot shrink) as of repetitive text (which it can), in files of mixed sizes.
const (
	benchRandomBytes = 64 << 20
	benchTextBytes   = 96 << 20
)

// BenchmarkSIFExport times SIFService.Build of a ~160 MB image against the bare pipeline
// `docker export CONTAINER | tar2sqfs -c gzip -q -f out.sqfs` on a container of the same
// image, on the same engine, one after the other in every iteration. It reports the seconds
// of each, their ratio, and how far the Go heap grew during the build (the peak of
// HeapInuse over its value before, sampled every 10 ms) and what the build allocated.
func BenchmarkSIFExport(b *testing.B) {
	tar2sqfs, err := exec.LookPath("tar2sqfs")
	if err != nil {
		b.Fatal("tar2sqfs not installed: apt-get install squashfs-tools-ng")
	}
	dockerCLI, err := exec.LookPath("docker")
	if err != nil {
		b.Fatal("the docker command is needed for the bare pipeline: apt-get install docker.io")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cli := dockertest.Client(b)
	svc := dockertest.NewService(b)
	cfg := svc.Config()

	ref := "wm-test-sifbench:" + dockertest.RunID()
	imgBytes, err := importBenchImage(ctx, cli, ref, cfg.Labels)
	// Removed at the end whatever happened; NewService's cleanup removes it by its labels too.
	b.Cleanup(func() {
		rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
		defer rcancel()
		_, err := cli.ImageRemove(rctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		if err != nil && !strings.Contains(err.Error(), "No such image") {
			b.Errorf("remove %s: %v", ref, err)
		}
	})
	if err != nil {
		b.Fatalf("import the benchmark image: %v", err)
	}

	dir := b.TempDir()
	ss, err := docker.NewSIFService(svc, docker.SIFOptions{Dir: filepath.Join(dir, "sif"), Tar2sqfs: tar2sqfs})
	if err != nil {
		b.Fatal(err)
	}
	if err := ss.ToolsError(); err != nil {
		b.Fatal(err)
	}

	// The bare pipeline's container: made from the same image, never started.
	ctr, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: cfg.NamePrefix + "-sifbench",
		Config: &container.Config{
			Image:           ref,
			Entrypoint:      []string{"/never-started"},
			Labels:          cfg.Labels,
			NetworkDisabled: true,
		},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		b.Fatalf("create the container for docker export: %v", err)
	}
	b.Cleanup(func() {
		rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
		defer rcancel()
		_, _ = cli.ContainerRemove(rctx, ctr.ID, client.ContainerRemoveOptions{Force: true})
	})

	// One untimed export first, so that neither side is timed reading a cold page cache.
	warm := exec.CommandContext(ctx, dockerCLI, "export", ctr.ID)
	var warmErr strings.Builder
	warm.Stdout, warm.Stderr = io.Discard, &warmErr
	if err := warm.Run(); err != nil {
		b.Fatalf("docker export: %v: %s", err, warmErr.String())
	}

	id := backend.Identity{User: "bench", Role: backend.RoleStudent}
	bareOut := filepath.Join(dir, "bare.sqfs")
	var ours, bare time.Duration
	var heapPeak, allocated, sifSize, sqfsSize int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Ours.
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		stop := sampleHeap(10 * time.Millisecond)
		start := time.Now()
		f, cached, err := ss.Build(ctx, id, ref, nil)
		ours += time.Since(start)
		peak := stop()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if err != nil {
			b.Fatalf("Build: %v", err)
		}
		if cached || f.Size == 0 {
			b.Fatalf("Build made nothing new: %+v cached %v", f, cached)
		}
		heapPeak = max(heapPeak, int64(peak)-int64(before.HeapInuse))
		allocated += int64(after.TotalAlloc - before.TotalAlloc)
		sifSize = f.Size
		if err := ss.Remove(ctx, id, f.Name); err != nil {
			b.Fatalf("remove the SIF: %v", err)
		}

		// The bare pipeline.
		start = time.Now()
		if err := exportPipeline(ctx, dockerCLI, tar2sqfs, ctr.ID, bareOut); err != nil {
			b.Fatal(err)
		}
		bare += time.Since(start)
		fi, err := os.Stat(bareOut)
		if err != nil || fi.Size() == 0 {
			b.Fatalf("the bare pipeline wrote nothing: %v", err)
		}
		sqfsSize = fi.Size()
		if err := os.Remove(bareOut); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()

	n := float64(b.N)
	const mb = 1 << 20
	b.ReportMetric(ours.Seconds()/n, "ours-s")
	b.ReportMetric(bare.Seconds()/n, "bare-s")
	b.ReportMetric(ours.Seconds()/bare.Seconds(), "ratio")
	b.ReportMetric(float64(heapPeak)/mb, "heap-peak-MB")
	b.ReportMetric(float64(allocated)/n/mb, "alloc-MB")
	b.ReportMetric(float64(imgBytes)/mb, "image-MB")
	b.Logf("image %.0f MB of files; SIF %.1f MB in %.2fs, bare squashfs %.1f MB in %.2fs (ratio %.2f); Go heap grew at most %.1f MB, %.1f MB allocated per build",
		float64(imgBytes)/mb, float64(sifSize)/mb, ours.Seconds()/n, float64(sqfsSize)/mb, bare.Seconds()/n,
		ours.Seconds()/bare.Seconds(), float64(heapPeak)/mb, float64(allocated)/n/mb)
}

// sampleHeap reads HeapInuse every interval until the returned function is called, which
// returns the highest value seen.
func sampleHeap(interval time.Duration) (stop func() uint64) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var peak uint64
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		peak = max(peak, m.HeapInuse)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			sample()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		sample()
		return peak
	}
}

// exportPipeline runs `docker export id | tar2sqfs -c gzip -q -f out`.
func exportPipeline(ctx context.Context, dockerCLI, tar2sqfs, id, out string) error {
	exp := exec.CommandContext(ctx, dockerCLI, "export", id)
	sq := exec.CommandContext(ctx, tar2sqfs, "-c", "gzip", "-q", "-f", out)
	pipe, err := exp.StdoutPipe()
	if err != nil {
		return err
	}
	sq.Stdin = pipe
	var expErr, sqErr strings.Builder
	exp.Stderr, sq.Stderr = &expErr, &sqErr
	if err := exp.Start(); err != nil {
		return fmt.Errorf("docker export: %w", err)
	}
	if err := sq.Start(); err != nil {
		_ = exp.Process.Kill()
		_ = exp.Wait()
		return fmt.Errorf("tar2sqfs: %w", err)
	}
	sqWait := sq.Wait()
	expWait := exp.Wait()
	if expWait != nil {
		return fmt.Errorf("docker export: %w: %s", expWait, strings.TrimSpace(expErr.String()))
	}
	if sqWait != nil {
		return fmt.Errorf("tar2sqfs: %w: %s", sqWait, strings.TrimSpace(sqErr.String()))
	}
	return nil
}

// importBenchImage imports an image of benchRandomBytes+benchTextBytes of files under /data,
// streamed from a generated tar through the image import API, labelled with labels (which
// carry the run's label). It returns the bytes of file content.
func importBenchImage(ctx context.Context, cli *client.Client, ref string, labels map[string]string) (int64, error) {
	pr, pw := io.Pipe()
	written := make(chan int64, 1)
	go func() {
		n, err := writeBenchTar(pw)
		pw.CloseWithError(err)
		written <- n
	}()
	changes := []string{`CMD ["/data/none"]`, "ENV PATH=/bin"}
	for k, v := range labels {
		changes = append(changes, fmt.Sprintf("LABEL %s=%q", k, v))
	}
	res, err := cli.ImageImport(ctx, client.ImageImportSource{Source: pr, SourceName: "-"}, ref, client.ImageImportOptions{Changes: changes})
	if err != nil {
		pr.CloseWithError(err)
		return 0, err
	}
	defer res.Close()
	dec := json.NewDecoder(res)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return 0, err
		}
		if m.Error != "" {
			return 0, errors.New(m.Error)
		}
	}
	ins, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		return 0, err
	}
	if ins.Size < (benchRandomBytes+benchTextBytes)/2 {
		return 0, fmt.Errorf("the imported image is only %d bytes", ins.Size)
	}
	return <-written, nil
}

// writeBenchTar writes the benchmark image's files: directories of random and of text
// files from 1 KB to 8 MB, with a fixed seed so every run exports the same bytes.
func writeBenchTar(w io.Writer) (int64, error) {
	tw := tar.NewWriter(w)
	src := rand.NewChaCha8([32]byte{'w', 'm'})
	rng := rand.New(src)
	now := time.Unix(1_700_000_000, 0)
	for _, d := range []string{"bin", "tmp", "data", "data/random", "data/text"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: now}); err != nil {
			return 0, err
		}
	}
	words := strings.Fields("the quick brown fox jumps over the lazy dog while students build images " +
		"on a shared server and download singularity files for the cluster 0123456789")
	var total int64
	buf := make([]byte, 1<<20)
	sizes := []int64{1 << 10, 16 << 10, 256 << 10, 1 << 20, 8 << 20}
	for kind, budget := range map[string]int64{"random": benchRandomBytes, "text": benchTextBytes} {
		for i := 0; budget > 0; i++ {
			size := min(sizes[i%len(sizes)], budget)
			budget -= size
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("data/%s/f%05d", kind, i), Mode: 0o644, Size: size, ModTime: now}
			if err := tw.WriteHeader(hdr); err != nil {
				return total, err
			}
			for left := size; left > 0; {
				chunk := buf[:min(left, int64(len(buf)))]
				if kind == "random" {
					_, _ = src.Read(chunk)
				} else {
					fillText(chunk, words, rng)
				}
				if _, err := tw.Write(chunk); err != nil {
					return total, err
				}
				left -= int64(len(chunk))
			}
			total += size
		}
	}
	return total, tw.Close()
}

// fillText fills p with words chosen at random, separated by spaces and newlines.
func fillText(p []byte, words []string, rng *rand.Rand) {
	for i := 0; i < len(p); {
		w := words[rng.IntN(len(words))]
		i += copy(p[i:], w)
		if i < len(p) {
			if rng.IntN(12) == 0 {
				p[i] = '\n'
			} else {
				p[i] = ' '
			}
			i++
		}
	}
}
