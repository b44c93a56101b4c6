package dockertest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// GPUEngine is the real engine behind a proxy that takes the GPU device requests out of every
// create (this engine has no NVIDIA container runtime and would refuse them), the seam
// backend/docker's TestGPURunOnEngineWithoutNvidia uses to look at a GPU create: everything the server decides
// (which GPUs, the labels that record them) is as on a GPU machine, and the engine then runs
// the container without devices. It returns the proxy's address and the device IDs each
// create asked for.
func GPUEngine(t testing.TB) (string, func() [][]string) {
	t.Helper()
	host := Client(t).DaemonHost()
	if !strings.HasPrefix(host, "unix://") {
		t.Fatalf("the GPU proxy needs a unix socket engine, not %s", host)
	}
	var mu sync.Mutex
	var asked [][]string
	createRE := regexp.MustCompile(`^(/v[0-9.]+)?/containers/create$`)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: "docker"})
			pr.Out.Host = "docker"
			if pr.Out.Method != http.MethodPost || !createRE.MatchString(pr.Out.URL.Path) || pr.Out.Body == nil {
				return
			}
			b, _ := io.ReadAll(pr.Out.Body)
			var body map[string]any
			if json.Unmarshal(b, &body) == nil {
				if hc, ok := body["HostConfig"].(map[string]any); ok {
					if reqs, ok := hc["DeviceRequests"].([]any); ok && len(reqs) > 0 {
						var ids []string
						for _, r := range reqs {
							if m, ok := r.(map[string]any); ok {
								for _, id := range m["DeviceIDs"].([]any) {
									ids = append(ids, id.(string))
								}
							}
						}
						mu.Lock()
						asked = append(asked, ids)
						mu.Unlock()
					}
					delete(hc, "DeviceRequests")
				}
				b, _ = json.Marshal(body)
			}
			pr.Out.Body = io.NopCloser(bytes.NewReader(b))
			pr.Out.ContentLength = int64(len(b))
			pr.Out.Header.Set("Content-Length", strconv.Itoa(len(b)))
		},
		FlushInterval: -1,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", strings.TrimPrefix(host, "unix://"))
		}},
	}
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "unix://" + sock, func() [][]string {
		mu.Lock()
		defer mu.Unlock()
		return append([][]string(nil), asked...)
	}
}
