package gpu

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ContainerIDFromCgroup finds the Docker container ID (64 lower-case hex digits) in the text
// of a /proc/PID/cgroup file. It knows cgroup v2 with the systemd driver
// ("0::/system.slice/docker-<id>.scope"), v2 with cgroupfs ("0::/docker/<id>"), v1
// ("N:ctrl:/docker/<id>"), rootless Docker (".../user@1000.service/.../docker-<id>.scope")
// and Kubernetes pods run by containerd, CRI-O or Docker
// (".../kubepods-....slice/cri-containerd-<id>.scope", "/kubepods/burstable/pod.../<id>").
// A process outside any container gives false.
func ContainerIDFromCgroup(text string) (string, bool) {
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		// hierarchy-ID:controllers:path; the path may itself hold colons.
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if id, ok := containerIDFromPath(parts[2]); ok {
			return id, true
		}
	}
	return "", false
}

// containerIDFromPath takes the outermost path segment that names a container: that is the
// one the host's engine started (an inner one would be Docker-in-Docker's own).
func containerIDFromPath(p string) (string, bool) {
	segs := strings.Split(p, "/")
	for i := range segs {
		seg := segs[i]
		if seg == "" {
			continue
		}
		seg = strings.TrimSuffix(seg, ".scope")
		for _, prefix := range []string{"docker-", "cri-containerd-", "crio-", "containerd-", "libpod-"} {
			if rest, ok := strings.CutPrefix(seg, prefix); ok {
				seg = rest
				break
			}
		}
		if !isContainerID(seg) {
			continue
		}
		// A bare ID must sit under a parent that says it is a container.
		if seg == segs[i] && !containerParent(segs[:i]) {
			continue
		}
		return seg, true
	}
	return "", false
}

// containerParent reports whether a bare 64-hex segment under these parents is a container.
func containerParent(parents []string) bool {
	for _, p := range parents {
		if p == "docker" || p == "kubepods" || strings.HasPrefix(p, "kubepods") || strings.HasPrefix(p, "pod") {
			return true
		}
	}
	return false
}

func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// containerOfPID reads <procRoot>/<pid>/cgroup. A process that is gone, unreadable or in no
// container gives false.
func containerOfPID(procRoot string, pid uint32) (string, bool) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10), "cgroup"))
	if err != nil {
		return "", false
	}
	return ContainerIDFromCgroup(string(b))
}
