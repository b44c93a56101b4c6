package sif

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"path"
	"strings"
	"testing"
	"time"
)

// FuzzRewriteTar: whatever an export stream holds, the rewriter never panics, and what it
// writes is a tar whose names stay inside the image (no "..", no absolute path leaving it).
func FuzzRewriteTar(f *testing.F) {
	var seed bytes.Buffer
	tw := tar.NewWriter(&seed)
	for _, h := range []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "bin/sh", Typeflag: tar.TypeReg, Mode: 0o755, Size: 2},
		{Name: "../../etc/evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 0},
		{Name: "lnk", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		{Name: ".dockerenv", Typeflag: tar.TypeReg, Size: 0},
	} {
		_ = tw.WriteHeader(h)
		if h.Size > 0 {
			_, _ = tw.Write([]byte("sh"))
		}
	}
	_ = tw.Close()
	f.Add(seed.Bytes())
	// The same without the entry that climbs out: rewritten in full.
	var ok bytes.Buffer
	tw = tar.NewWriter(&ok)
	_ = tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	_ = tw.WriteHeader(&tar.Header{Name: "etc/hard", Typeflag: tar.TypeLink, Linkname: "bin/sh"})
	_ = tw.Close()
	f.Add(ok.Bytes())
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		cfg := ImageConfig{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}}
		if err := RewriteTar(bytes.NewReader(data), &out, cfg, "fuzz:1", "amd64", time.Unix(0, 0)); err != nil {
			return
		}
		tr := tar.NewReader(&out)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatalf("the rewritten stream is not a tar: %v", err)
			}
			for _, n := range []string{h.Name, h.Linkname} {
				if n == h.Linkname && h.Typeflag != tar.TypeLink {
					continue
				}
				if c := path.Clean(strings.TrimLeft(n, "/")); c == ".." || strings.HasPrefix(c, "../") {
					t.Fatalf("entry %q (link %q) leaves the image", h.Name, h.Linkname)
				}
			}
		}
	})
}
