package main

import (
	"strings"
	"testing"
)

func TestMetricsAddrValidation(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		wantErr string // "" for valid
	}{
		{"", ""}, // off, the default
		{"127.0.0.1:9100", ""},
		{":9100", ""},
		{"[::1]:9100", ""},
		{"localhost:0", ""},
		{"9100", "metrics_addr"},
		{"127.0.0.1", "metrics_addr"},
		{"127.0.0.1:http", "metrics_addr"},
		{"127.0.0.1:70000", "metrics_addr"},
		{"127.0.0.1:-1", "metrics_addr"},
	} {
		c := defaultConfig()
		c.MetricsAddr = tc.addr
		err := c.validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("metrics_addr %q: unexpected error %v", tc.addr, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("metrics_addr %q: error %v, want one naming %s", tc.addr, err, tc.wantErr)
		}
	}
}

func TestMetricsAddrDefaultOff(t *testing.T) {
	if a := defaultConfig().MetricsAddr; a != "" {
		t.Fatalf("default metrics_addr = %q, want empty (off)", a)
	}
}

func TestMetricsAddrFromFileAndEnv(t *testing.T) {
	c := defaultConfig()
	path := writeFile(t, "wm.yaml", "metrics_addr: 127.0.0.1:9100\n", 0o600)
	if err := c.loadFile(path); err != nil {
		t.Fatal(err)
	}
	if c.MetricsAddr != "127.0.0.1:9100" {
		t.Fatalf("from file: %q", c.MetricsAddr)
	}
	if err := c.applyEnv(envMap(map[string]string{"WM_METRICS_ADDR": "0.0.0.0:9200"})); err != nil {
		t.Fatal(err)
	}
	if c.MetricsAddr != "0.0.0.0:9200" {
		t.Fatalf("WM_METRICS_ADDR did not win over the file: %q", c.MetricsAddr)
	}
}
