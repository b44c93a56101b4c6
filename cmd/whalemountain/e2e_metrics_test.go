package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestE2EMetrics starts the server with the metrics endpoint on and scrapes it.
func TestE2EMetrics(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", freePort(t))
	s := startServer(t, serverOptions{
		Config: "metrics_addr: " + addr + "\ndocker:\n  enabled: false\n",
	})
	s.waitLog(t, "metrics on http://"+addr+"/metrics")

	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	if !strings.Contains(string(body), "\nwhalemountain_ssh_sessions_open 0\n") {
		t.Fatalf("scrape lacks whalemountain_ssh_sessions_open 0:\n%s", body)
	}
	if strings.Contains(string(body), "whalemountain_containers{") {
		t.Errorf("containers are off, yet the scrape has container series:\n%s", body)
	}
}
