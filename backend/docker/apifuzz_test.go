package docker

import (
	"strings"
	"testing"

	"github.com/distribution/reference"
)

// FuzzCheckCreate: whatever a Docker API create body holds, checking it never panics, a
// refusal is one line, and what is allowed carries nothing the hardening owns: no
// privilege, capability, security option, namespace, host path, device or resource of the
// request's.
func FuzzCheckCreate(f *testing.F) {
	f.Add(cliCreateBody)
	f.Add(`{"Image":"busybox","HostConfig":{"Privileged":true}}`)
	f.Add(`{"Image":"busybox","HostConfig":{"Binds":["data:/data:ro","/:/host"],"Mounts":[{"Type":"tmpfs","Target":"/t"}]}}`)
	f.Add(`{"Image":"busybox","HostConfig":{"NetworkMode":"container:box","VolumesFrom":["box:ro"],"DeviceRequests":[{"Count":1,"Capabilities":[["gpu"]]}]}}`)
	f.Add(`{"Image":"busybox","Labels":{"whalemountain.owner":"bob"},"NetworkingConfig":{"EndpointsConfig":{"default":{"Aliases":["db"]}}}}`)
	f.Fuzz(func(t *testing.T, body string) {
		req, err := decodeCreate([]byte(body))
		if err != nil {
			return
		}
		p, err := checkCreate(req, testRules())
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("refusal on more than one line: %q", err)
			}
			return
		}
		h := p.host
		if h.Privileged || len(h.CapAdd) > 0 || len(h.SecurityOpt) > 0 || h.PidMode != "" || h.IpcMode != "" ||
			h.UTSMode != "" || h.UsernsMode != "" || h.CgroupParent != "" || h.NetworkMode != "" || len(h.Binds) > 0 ||
			len(h.Devices) > 0 || len(h.DeviceRequests) > 0 || h.Memory != 0 || h.NanoCPUs != 0 || h.PidsLimit != nil ||
			len(h.VolumesFrom) > 0 || len(h.Sysctls) > 0 || h.Runtime != "" || len(h.PortBindings) > 0 || h.MaskedPaths != nil {
			t.Fatalf("the plan's host config carries what only the server sets: %+v", h)
		}
		for _, m := range h.Mounts {
			if m.Type != "tmpfs" || m.Source != "" {
				t.Fatalf("a mount other than tmpfs in the plan: %+v", m)
			}
		}
		for _, v := range p.volumes {
			if ValidateVolumeName(v.name) != nil || !strings.HasPrefix(v.target, "/") || v.target == "/home/alice" {
				t.Fatalf("a volume use the checks should have refused: %+v", v)
			}
		}
		for k := range p.labels {
			if strings.HasPrefix(k, "whalemountain.") {
				t.Fatalf("a server label kept from the request: %s", k)
			}
		}
		if p.cpus > testRules().quota.MaxCPUs || p.memory > testRules().quota.MaxMemory {
			t.Fatalf("over the quota: %g CPUs, %d bytes", p.cpus, p.memory)
		}
	})
}

// FuzzScanDockerfile: whatever a Dockerfile holds, scanning it never panics, refusals are
// one line, and every image it names is a valid reference.
func FuzzScanDockerfile(f *testing.F) {
	for _, seed := range []string{
		"FROM busybox\nRUN echo hi\n",
		"ARG BASE=alpine:3\nFROM ${BASE} AS b\nCOPY --from=b /a /b\nCOPY --from=nginx:1 /x /y\n",
		"# escape=`\nFROM busybox\nADD `\n  https://x/y /y\n",
		"FROM busybox\nADD [\"http://10.0.0.1/s\", \"/s\"]\nONBUILD ADD http://x /y\n",
		"FROM ${A:-busybox}:${B:+x}\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, df string) {
		refs, err := scanDockerfile([]byte(df), nil)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("refusal on more than one line: %q", err)
			}
			return
		}
		for _, r := range refs {
			if _, err := reference.ParseNormalizedNamed(r); err != nil {
				t.Fatalf("an invalid image reference %q", r)
			}
		}
	})
}
