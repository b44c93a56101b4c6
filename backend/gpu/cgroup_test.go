package gpu

import (
	"os"
	"path/filepath"
	"testing"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestContainerIDFromCgroup(t *testing.T) {
	tests := []struct {
		file string
		want string // "" means not in a container
	}{
		{"v2-systemd.cgroup", testID},
		{"v2-cgroupfs.cgroup", testID},
		{"v1.cgroup", testID},
		{"rootless.cgroup", testID},
		{"kubepods-systemd.cgroup", testID},
		{"kubepods-cgroupfs.cgroup", testID},
		{"host-user.cgroup", ""},
		{"host-init.cgroup", ""},
		{"host-v1.cgroup", ""},
		{"hex-service.cgroup", ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := ContainerIDFromCgroup(string(b))
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("ContainerIDFromCgroup(%s) = %q, %v; want %q", tt.file, got, ok, tt.want)
			}
		})
	}
}

func TestContainerIDFromCgroupEdges(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"empty", "", ""},
		{"garbage", "not a cgroup file\n", ""},
		{"short id", "0::/docker/0123456789ab\n", ""},
		{"upper-case hex", "0::/docker/" + "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF" + "\n", ""},
		{"bare id without a container parent", "0::/" + testID + "\n", ""},
		{"no trailing newline", "0::/docker/" + testID, testID},
		{"nested docker takes the outer", "0::/docker/" + testID + "/docker/" + "f" + testID[1:] + "\n", testID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ContainerIDFromCgroup(tt.text)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("got %q, %v; want %q", got, ok, tt.want)
			}
		})
	}
}
