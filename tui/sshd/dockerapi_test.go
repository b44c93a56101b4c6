package sshd

import "testing"

// TestIsDialStdio: the docker CLI's remote command is recognised, with the socket path a
// docker context may name; nothing else is taken for it.
func TestIsDialStdio(t *testing.T) {
	yes := [][]string{
		{"docker", "system", "dial-stdio"},
		{"docker", "--host", "unix:///docker.sock", "system", "dial-stdio"},
		{"docker", "--host=unix:///docker.sock", "system", "dial-stdio"},
		{"docker", "-H", "/docker.sock", "system", "dial-stdio"},
	}
	no := [][]string{
		nil,
		{"docker"},
		{"docker", "ps"},
		{"docker", "system", "dial-stdio", "extra"},
		{"docker", "--host", "tcp://10.0.0.1:2375", "system", "dial-stdio"},
		{"docker", "--host", "unix:///var/run/docker.sock", "system", "dial-stdio"},
		{"docker", "--host", "unix:///var/run/containerd/containerd.sock", "system", "dial-stdio"},
		{"docker", "--host"},
		{"docker", "--tlsverify", "system", "dial-stdio"},
		{"sh", "-c", "docker system dial-stdio"},
		{"dockerd", "system", "dial-stdio"},
	}
	for _, a := range yes {
		if !isDialStdio(a) {
			t.Errorf("%q is the docker CLI's dial-stdio", a)
		}
	}
	for _, a := range no {
		if isDialStdio(a) {
			t.Errorf("%q taken for dial-stdio", a)
		}
	}
}

func TestDockerHost(t *testing.T) {
	for prefix, want := range map[string]string{
		"ssh -p 2222 gpu1.ie.example": "alice@gpu1.ie.example:2222",
		"ssh gpu1":                    "alice@gpu1",
	} {
		if got := dockerHost(prefix, "alice"); got != want {
			t.Errorf("dockerHost(%q) = %q, want %q", prefix, got, want)
		}
	}
}
