package docker

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"whalemountain/backend"
)

// cliCreateBody is what the docker CLI (28.x) sends for `docker run IMAGE sleep 100`.
const cliCreateBody = `{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,
"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["sleep","100"],"Image":"busybox:latest","Volumes":{},
"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},"HostConfig":{"Binds":null,"ContainerIDFile":"",
"LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},
"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"",
"Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,
"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,
"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"",
"BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],
"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"",
"CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,
"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,
"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{"default":{
"IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"",
"EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"",
"GlobalIPv6PrefixLen":0,"DNSNames":null}}}}`

// createBody is the CLI's body with fields set: "HostConfig.Privileged" -> true, "Image" -> "x".
func createBody(t *testing.T, set map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(cliCreateBody), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		obj := m
		parts := strings.Split(k, ".")
		for _, p := range parts[:len(parts)-1] {
			next, ok := obj[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				obj[p] = next
			}
			obj = next
		}
		obj[parts[len(parts)-1]] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testRules() createRules {
	cfg := DefaultConfig()
	return createRules{caps: cfg.capabilities(), quota: cfg.Student, role: "students", home: "/home/alice"}
}

// TestCheckCreateRefusesEachField: every field that would give a container more than the
// policy allows is refused with a line naming it (and the flag), as one of the user's
// mistakes, not a server failure.
func TestCheckCreateRefusesEachField(t *testing.T) {
	cases := []struct {
		name  string
		set   map[string]any
		field string // must appear in the error
		kind  error
	}{
		{"privileged", map[string]any{"HostConfig.Privileged": true}, "--privileged (HostConfig.Privileged)", ErrPermission},
		{"cap SYS_ADMIN", map[string]any{"HostConfig.CapAdd": []string{"SYS_ADMIN"}}, "HostConfig.CapAdd", ErrPermission},
		{"cap ALL", map[string]any{"HostConfig.CapAdd": []string{"ALL"}}, "HostConfig.CapAdd", ErrPermission},
		{"cap NET_RAW", map[string]any{"HostConfig.CapAdd": []string{"CAP_NET_RAW"}}, "HostConfig.CapAdd", ErrPermission},
		{"seccomp", map[string]any{"HostConfig.SecurityOpt": []string{"seccomp=unconfined"}}, "HostConfig.SecurityOpt", ErrPermission},
		{"seccomp profile", map[string]any{"HostConfig.SecurityOpt": []string{`seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`}}, "seccomp=...", ErrPermission},
		{"apparmor", map[string]any{"HostConfig.SecurityOpt": []string{"apparmor=unconfined"}}, "HostConfig.SecurityOpt", ErrPermission},
		{"selinux", map[string]any{"HostConfig.SecurityOpt": []string{"label=disable"}}, "HostConfig.SecurityOpt", ErrPermission},
		{"systempaths", map[string]any{"HostConfig.MaskedPaths": []string{}, "HostConfig.ReadonlyPaths": []string{}}, "HostConfig.MaskedPaths", ErrPermission},
		{"pid host", map[string]any{"HostConfig.PidMode": "host"}, "--pid (HostConfig.PidMode)", ErrPermission},
		{"pid container", map[string]any{"HostConfig.PidMode": "container:bob-box"}, "HostConfig.PidMode", ErrPermission},
		{"ipc host", map[string]any{"HostConfig.IpcMode": "host"}, "HostConfig.IpcMode", ErrPermission},
		{"ipc container", map[string]any{"HostConfig.IpcMode": "container:x"}, "HostConfig.IpcMode", ErrPermission},
		{"uts host", map[string]any{"HostConfig.UTSMode": "host"}, "HostConfig.UTSMode", ErrPermission},
		{"userns host", map[string]any{"HostConfig.UsernsMode": "host"}, "--userns (HostConfig.UsernsMode)", ErrPermission},
		{"cgroupns host", map[string]any{"HostConfig.CgroupnsMode": "host"}, "HostConfig.CgroupnsMode", ErrPermission},
		{"cgroup", map[string]any{"HostConfig.Cgroup": "container:x"}, "HostConfig.Cgroup", ErrPermission},
		{"cgroup parent", map[string]any{"HostConfig.CgroupParent": "/"}, "HostConfig.CgroupParent", ErrPermission},
		{"device", map[string]any{"HostConfig.Devices": []map[string]string{{"PathOnHost": "/dev/mem", "PathInContainer": "/dev/mem", "CgroupPermissions": "rwm"}}}, "--device (HostConfig.Devices)", ErrPermission},
		{"device rule", map[string]any{"HostConfig.DeviceCgroupRules": []string{"c *:* rwm"}}, "HostConfig.DeviceCgroupRules", ErrPermission},
		{"device request", map[string]any{"HostConfig.DeviceRequests": []map[string]any{{"Driver": "cdi", "Count": 1, "Capabilities": [][]string{{"gpu"}}}}}, "HostConfig.DeviceRequests", ErrPermission},
		{"gpus all", map[string]any{"HostConfig.DeviceRequests": []map[string]any{{"Count": -1, "Capabilities": [][]string{{"gpu"}}}}}, "HostConfig.DeviceRequests", ErrInvalid},
		{"gpu uuid", map[string]any{"HostConfig.DeviceRequests": []map[string]any{{"DeviceIDs": []string{"GPU-1234"}, "Capabilities": [][]string{{"gpu"}}}}}, "HostConfig.DeviceRequests", ErrInvalid},
		{"sysctl", map[string]any{"HostConfig.Sysctls": map[string]string{"net.ipv4.ip_forward": "1"}}, "--sysctl (HostConfig.Sysctls)", ErrPermission},
		{"runtime", map[string]any{"HostConfig.Runtime": "nvidia"}, "HostConfig.Runtime", ErrPermission},
		{"oom kill disable", map[string]any{"HostConfig.OomKillDisable": true}, "HostConfig.OomKillDisable", ErrPermission},
		{"oom score", map[string]any{"HostConfig.OomScoreAdj": -1000}, "HostConfig.OomScoreAdj", ErrPermission},
		{"ulimit", map[string]any{"HostConfig.Ulimits": []map[string]any{{"Name": "nofile", "Soft": 1 << 20, "Hard": 1 << 20}}}, "HostConfig.Ulimits", ErrPermission},
		{"realtime", map[string]any{"HostConfig.CpuRealtimeRuntime": 950000}, "HostConfig.CpuRealtimeRuntime", ErrPermission},
		{"storage opt", map[string]any{"HostConfig.StorageOpt": map[string]string{"size": "1T"}}, "HostConfig.StorageOpt", ErrPermission},
		{"annotations", map[string]any{"HostConfig.Annotations": map[string]string{"a": "b"}}, "HostConfig.Annotations", ErrPermission},
		{"memory over quota", map[string]any{"HostConfig.Memory": 64 << 30}, "--memory (HostConfig.Memory)", ErrQuota},
		{"memory too small", map[string]any{"HostConfig.Memory": 1024}, "HostConfig.Memory", ErrInvalid},
		{"cpus over quota", map[string]any{"HostConfig.NanoCpus": 3e9}, "--cpus (HostConfig.NanoCpus)", ErrQuota},
		{"cpu quota over quota", map[string]any{"HostConfig.CpuQuota": 500000, "HostConfig.CpuPeriod": 100000}, "HostConfig.NanoCpus", ErrQuota},
		{"shm over quota", map[string]any{"HostConfig.ShmSize": 64 << 30}, "HostConfig.ShmSize", ErrQuota},
		{"bind root", map[string]any{"HostConfig.Binds": []string{"/:/host"}}, "--volume (HostConfig.Binds): host path /", ErrPermission},
		{"bind socket", map[string]any{"HostConfig.Binds": []string{"/var/run/docker.sock:/var/run/docker.sock"}}, "Docker socket", ErrPermission},
		{"bind run socket", map[string]any{"HostConfig.Binds": []string{"/run/docker.sock:/s"}}, "Docker socket", ErrPermission},
		{"bind relative", map[string]any{"HostConfig.Binds": []string{"./src:/src"}}, "HostConfig.Binds", ErrPermission},
		{"bind home of another", map[string]any{"HostConfig.Binds": []string{"/home/bob:/b"}}, "host path /home/bob", ErrPermission},
		{"volume over home", map[string]any{"HostConfig.Binds": []string{"data:/home/alice"}}, "your home", ErrInvalid},
		{"volume bad option", map[string]any{"HostConfig.Binds": []string{"data:/data:rshared"}}, "HostConfig.Binds", ErrInvalid},
		{"mount bind", map[string]any{"HostConfig.Mounts": []map[string]any{{"Type": "bind", "Source": "/etc", "Target": "/e"}}}, "--mount (HostConfig.Mounts)", ErrPermission},
		{"mount socket", map[string]any{"HostConfig.Mounts": []map[string]any{{"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/s"}}}, "Docker socket", ErrPermission},
		{"mount driver", map[string]any{"HostConfig.Mounts": []map[string]any{{"Type": "volume", "Source": "v", "Target": "/v",
			"VolumeOptions": map[string]any{"DriverConfig": map[string]any{"Name": "local", "Options": map[string]string{"type": "none", "device": "/", "o": "bind"}}}}}}, "HostConfig.Mounts", ErrPermission},
		{"mount image", map[string]any{"HostConfig.Mounts": []map[string]any{{"Type": "image", "Source": "x", "Target": "/x"}}}, "HostConfig.Mounts", ErrPermission},
		{"mount npipe", map[string]any{"HostConfig.Mounts": []map[string]any{{"Type": "npipe", "Source": "x", "Target": "/x"}}}, "HostConfig.Mounts", ErrPermission},
		{"volume driver", map[string]any{"HostConfig.VolumeDriver": "nfs"}, "HostConfig.VolumeDriver", ErrPermission},
		{"network host", map[string]any{"HostConfig.NetworkMode": "host"}, "--network (HostConfig.NetworkMode)", ErrPermission},
		{"network other endpoint", map[string]any{"HostConfig.NetworkMode": "mynet",
			"NetworkingConfig.EndpointsConfig": map[string]any{"wm-net-bob": map[string]any{}}}, "NetworkingConfig.EndpointsConfig", ErrPermission},
		{"endpoint other", map[string]any{"NetworkingConfig.EndpointsConfig": map[string]any{"wm-net-bob": map[string]any{}}}, "NetworkingConfig.EndpointsConfig", ErrPermission},
		{"static ip", map[string]any{"NetworkingConfig.EndpointsConfig": map[string]any{"default": map[string]any{"IPAMConfig": map[string]string{"IPv4Address": "172.17.0.99"}}}}, "--ip", ErrPermission},
		{"publish", map[string]any{"HostConfig.PortBindings": map[string]any{"80/tcp": []map[string]string{{"HostIp": "", "HostPort": "8080"}}}}, "--publish (HostConfig.PortBindings)", ErrPermission},
		{"publish all", map[string]any{"HostConfig.PublishAllPorts": true}, "HostConfig.PublishAllPorts", ErrPermission},
		{"link", map[string]any{"HostConfig.Links": []string{"bob-box:db"}}, "--link (HostConfig.Links)", ErrPermission},
		{"log driver", map[string]any{"HostConfig.LogConfig": map[string]any{"Type": "syslog", "Config": map[string]string{"syslog-address": "tcp://10.0.0.1:514"}}}, "HostConfig.LogConfig", ErrPermission},
		{"log option", map[string]any{"HostConfig.LogConfig": map[string]any{"Type": "json-file", "Config": map[string]string{"path": "/etc"}}}, "--log-opt", ErrPermission},
		{"isolation", map[string]any{"HostConfig.Isolation": "hyperv"}, "HostConfig.Isolation", ErrPermission},
		{"restart", map[string]any{"HostConfig.RestartPolicy": map[string]any{"Name": "forever"}}, "HostConfig.RestartPolicy", ErrInvalid},
		{"restart always", map[string]any{"HostConfig.RestartPolicy": map[string]any{"Name": "always"}}, "--restart (HostConfig.RestartPolicy)", ErrPermission},
		{"restart unless-stopped", map[string]any{"HostConfig.RestartPolicy": map[string]any{"Name": "unless-stopped"}}, "past the running quota", ErrPermission},
		{"no image", map[string]any{"Image": ""}, "Config.Image", ErrInvalid},
		{"bad env", map[string]any{"Env": []string{"A B=1"}}, "environment variable", ErrInvalid},
		{"bad hostname", map[string]any{"Hostname": "a\x1b[2Jb"}, "Config.Hostname", ErrInvalid},
		{"relative workdir", map[string]any{"WorkingDir": "src"}, "Config.WorkingDir", ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := decodeCreate(createBody(t, c.set))
			if err != nil {
				t.Fatal(err)
			}
			_, err = checkCreate(req, testRules())
			if err == nil {
				t.Fatalf("allowed, want %s refused", c.field)
			}
			if !errors.Is(err, c.kind) {
				t.Errorf("error %q is not of kind %v", err, c.kind)
			}
			if msg := err.Error(); !strings.Contains(msg, c.field) || strings.Contains(msg, "\n") {
				t.Errorf("error %q does not name %q on one line", msg, c.field)
			}
		})
	}
}

// TestCheckCreateAllows: what a student may ask for passes, and only the allowed part is
// kept; the server's label keys never are.
func TestCheckCreateAllows(t *testing.T) {
	cases := []struct {
		name  string
		set   map[string]any
		check func(t *testing.T, p createPlan)
	}{
		{"the CLI's plain run", nil, func(t *testing.T, p createPlan) {
			if p.config.Image != "busybox:latest" || !slices.Equal(p.config.Cmd, []string{"sleep", "100"}) {
				t.Errorf("config %+v", p.config)
			}
		}},
		{"allowed capability and no-new-privileges", map[string]any{"HostConfig.CapAdd": []string{"chown", "CAP_KILL"},
			"HostConfig.SecurityOpt": []string{"no-new-privileges"}}, nil},
		{"limits within the quota", map[string]any{"HostConfig.Memory": 512 << 20, "HostConfig.NanoCpus": 1.5e9}, func(t *testing.T, p createPlan) {
			if p.memory != 512<<20 || p.cpus != 1.5 {
				t.Errorf("memory %d cpus %g", p.memory, p.cpus)
			}
		}},
		{"cpu quota", map[string]any{"HostConfig.CpuQuota": 50000, "HostConfig.CpuPeriod": 100000}, func(t *testing.T, p createPlan) {
			if p.cpus != 0.5 {
				t.Errorf("cpus %g", p.cpus)
			}
		}},
		{"named volume", map[string]any{"HostConfig.Binds": []string{"data:/data:ro", "cache:/cache"}}, func(t *testing.T, p createPlan) {
			want := []volumeUse{{name: "data", target: "/data", readOnly: true}, {name: "cache", target: "/cache"}}
			if !slices.Equal(p.volumes, want) {
				t.Errorf("volumes %+v, want %+v", p.volumes, want)
			}
		}},
		{"mounts of volume and tmpfs", map[string]any{"HostConfig.Mounts": []map[string]any{
			{"Type": "volume", "Source": "data", "Target": "/data"}, {"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": map[string]any{"SizeBytes": 1 << 20}}}},
			func(t *testing.T, p createPlan) {
				if len(p.volumes) != 1 || len(p.host.Mounts) != 1 || p.host.Mounts[0].Target != "/scratch" {
					t.Errorf("volumes %+v mounts %+v", p.volumes, p.host.Mounts)
				}
			}},
		{"gpus by count", map[string]any{"HostConfig.DeviceRequests": []map[string]any{{"Driver": "", "Count": 1, "Capabilities": [][]string{{"gpu"}}}}},
			func(t *testing.T, p createPlan) {
				if p.gpus != "1" {
					t.Errorf("gpus %q", p.gpus)
				}
			}},
		{"gpus by index", map[string]any{"HostConfig.DeviceRequests": []map[string]any{{"DeviceIDs": []string{"0", "2"}, "Capabilities": [][]string{{"gpu"}}}}},
			func(t *testing.T, p createPlan) {
				if p.gpus != "0,2" {
					t.Errorf("gpus %q", p.gpus)
				}
			}},
		{"network of my container", map[string]any{"HostConfig.NetworkMode": "container:box"}, func(t *testing.T, p createPlan) {
			if p.netFrom != "box" {
				t.Errorf("netFrom %q", p.netFrom)
			}
		}},
		{"a network by name, looked up among the user's at create", map[string]any{"HostConfig.NetworkMode": "wm-net-bob"}, func(t *testing.T, p createPlan) {
			if p.network != "wm-net-bob" {
				t.Errorf("network %q", p.network)
			}
		}},
		{"no network", map[string]any{"HostConfig.NetworkMode": "none"}, func(t *testing.T, p createPlan) {
			if !p.netNone {
				t.Error("not netNone")
			}
		}},
		{"volumes from", map[string]any{"HostConfig.VolumesFrom": []string{"box:ro"}}, func(t *testing.T, p createPlan) {
			if !slices.Equal(p.volumesFrom, []string{"box:ro"}) {
				t.Errorf("volumesFrom %q", p.volumesFrom)
			}
		}},
		{"labels, the server's dropped", map[string]any{"Labels": map[string]string{"whalemountain.owner": "bob",
			"whalemountain.gpus": "GPU-x", "whalemountain.kind": "container", "com.docker.compose.project": "lab"}},
			func(t *testing.T, p createPlan) {
				if len(p.labels) != 1 || p.labels["com.docker.compose.project"] != "lab" {
					t.Errorf("labels %v", p.labels)
				}
			}},
		{"aliases", map[string]any{"NetworkingConfig.EndpointsConfig": map[string]any{"default": map[string]any{"Aliases": []string{"db"}}}},
			func(t *testing.T, p createPlan) {
				if !slices.Equal(p.aliases, []string{"db"}) {
					t.Errorf("aliases %q", p.aliases)
				}
			}},
		{"entrypoint reset", map[string]any{"Entrypoint": []string{""}}, nil},
		{"restart and auto-remove", map[string]any{"HostConfig.RestartPolicy": map[string]any{"Name": "on-failure", "MaximumRetryCount": 3}, "HostConfig.AutoRemove": true},
			func(t *testing.T, p createPlan) {
				if !p.host.AutoRemove || p.host.RestartPolicy.Name != "on-failure" {
					t.Errorf("host %+v", p.host)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := decodeCreate(createBody(t, c.set))
			if err != nil {
				t.Fatal(err)
			}
			p, err := checkCreate(req, testRules())
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			// Whatever was asked, the kept host config carries nothing the hardening owns.
			h := p.host
			if h.Privileged || len(h.CapAdd) > 0 || len(h.SecurityOpt) > 0 || h.PidMode != "" || h.IpcMode != "" ||
				h.NetworkMode != "" || len(h.Binds) > 0 || len(h.Devices) > 0 || len(h.DeviceRequests) > 0 || h.Memory != 0 ||
				h.NanoCPUs != 0 || h.PidsLimit != nil || len(h.VolumesFrom) > 0 {
				t.Errorf("the plan's host config carries what only the server sets: %+v", h)
			}
			if c.check != nil {
				c.check(t, p)
			}
		})
	}
}

// TestResolveAmongOnlyOwn: a reference resolves among the caller's own containers only,
// by their name, full ID or an unambiguous ID prefix.
func TestResolveAmongOnlyOwn(t *testing.T) {
	mine := []container.Summary{
		{ID: "abc123" + strings.Repeat("0", 58), Labels: map[string]string{LabelName: "box"}},
		{ID: "abd456" + strings.Repeat("1", 58), Labels: map[string]string{LabelName: "web"}},
	}
	cases := []struct {
		ref  string
		want string // name, "" for not found
		err  bool
	}{
		{"box", "box", false},
		{"/box", "box", false},
		{"web", "web", false},
		{mine[0].ID, "box", false},
		{"abc", "box", false},
		{"abd4", "web", false},
		{"ab", "", true}, // ambiguous among mine
		{"bob-box", "", false},
		{"fff", "", false},
		{"wm-alice-box", "", false},
		{"", "", false},
		{"ABC", "", false},
	}
	for _, c := range cases {
		got, ok, err := resolveAmong(mine, c.ref)
		if (err != nil) != c.err {
			t.Errorf("%q: err %v", c.ref, err)
			continue
		}
		if name := got.Labels[LabelName]; ok != (c.want != "") || ok && name != c.want {
			t.Errorf("%q resolved to %q (%v), want %q", c.ref, name, ok, c.want)
		}
	}
}

// TestAPIErrorsAreOneLine: the refusals users read are one line, with what they typed
// neutralised.
func TestAPIErrorsAreOneLine(t *testing.T) {
	for _, err := range []error{notFoundAPI("x\x1b[31m\ny"), noSuchImage("a\nb"), noSuchVolume("v\r")} {
		if strings.ContainsAny(err.Error(), "\n\r\x1b") {
			t.Errorf("%q", err.Error())
		}
	}
}

// TestScanDockerfile: the images a build needs are found (FROM, COPY --from, build
// arguments), and what the engine would fetch by itself is refused.
func TestScanDockerfile(t *testing.T) {
	arg := func(s string) *string { return &s }
	cases := []struct {
		name   string
		df     string
		args   map[string]*string
		want   []string
		refuse string
	}{
		{"plain", "FROM busybox\nRUN echo hi\n", nil, []string{"busybox:latest"}, ""},
		{"lower case and comments", "# a comment\nfrom  alpine:3.20 \n# RUN x\nrun true", nil, []string{"alpine:3.20"}, ""},
		{"platform and stage", "FROM --platform=linux/amd64 golang:1.26 AS build\nFROM build\nCOPY --from=build /a /b", nil, []string{"golang:1.26"}, ""},
		{"copy from an image", "FROM busybox\nCOPY --from=nginx:1 /etc/nginx /n\nCOPY --from=0 /a /b", nil, []string{"busybox:latest", "nginx:1"}, ""},
		{"global arg default", "ARG BASE=alpine:3\nFROM ${BASE}\n", nil, []string{"alpine:3"}, ""},
		{"global arg from build-arg", "ARG BASE=alpine:3\nFROM $BASE\n", map[string]*string{"BASE": arg("debian:12")}, []string{"debian:12"}, ""},
		{"arg with default form", "ARG V\nFROM busybox:${V:-1.36}\n", nil, []string{"busybox:1.36"}, ""},
		{"unresolved arg", "FROM ${NOPE}\n", nil, nil, "must be known before the build"},
		{"stage arg not visible", "FROM busybox\nARG X=alpine\nFROM $X\n", nil, nil, "must be known"},
		{"scratch", "FROM scratch\nCOPY a /a\n", nil, nil, ""},
		{"add url", "FROM busybox\nADD https://example.org/x.tgz /x\n", nil, nil, "does not fetch URLs"},
		{"add url json", "FROM busybox\nADD [\"http://10.0.0.1/secret\", \"/s\"]\n", nil, nil, "does not fetch URLs"},
		{"add url continued", "FROM busybox\nADD \\\n  http://169.254.169.254/latest \\\n  /m\n", nil, nil, "does not fetch URLs"},
		{"add git", "FROM busybox\nADD git@example.org:a/b.git /b\n", nil, nil, "does not fetch URLs"},
		{"add url with escape directive", "# escape=`\nFROM busybox\nADD `\n  https://x/y /y\n", nil, nil, "does not fetch URLs"},
		{"add local", "FROM busybox\nADD --chown=1:1 local.tar /x\n", nil, []string{"busybox:latest"}, ""},
		{"onbuild add url", "FROM busybox\nONBUILD ADD http://x/y /y\n", nil, nil, "does not fetch URLs"},
		{"onbuild copy from image", "FROM busybox\nONBUILD COPY --from=evil:1 /a /b\n", nil, nil, "not allowed"},
		{"no from", "RUN true\n", nil, nil, "no FROM"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := scanDockerfile([]byte(c.df), c.args)
			if c.refuse != "" {
				if err == nil || !strings.Contains(err.Error(), c.refuse) {
					t.Fatalf("got %q, %v; want a refusal with %q", got, err, c.refuse)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("images %q, want %q", got, c.want)
			}
		})
	}
}

// TestCheckBuild: the build parameters are read against the allow-list, tags against the
// caller's own namespace, resources against the quota.
func TestCheckBuild(t *testing.T) {
	svc := newService(DefaultConfig(), nil, nil)
	images, err := NewImageService(svc, ImagePolicy{RegistryNamespace: "registry.example.org"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAPI(svc, images, APIOptions{})
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	cases := []struct {
		params map[string][]string
		refuse string
	}{
		{map[string][]string{"t": {"registry.example.org/alice/x:1"}, "version": {"1"}, "dockerfile": {"Dockerfile"}}, ""},
		{map[string][]string{"t": {"registry.example.org/alice/x"}, "rm": {"1"}, "forcerm": {"1"}, "nocache": {"1"}, "q": {"1"}}, ""},
		{map[string][]string{}, ""},
		{map[string][]string{"version": {"2"}, "session": {"abc"}}, "DOCKER_BUILDKIT=0"},
		{map[string][]string{"t": {"otheruser/x"}}, "only into your own registry namespace, registry.example.org/alice/"},
		{map[string][]string{"t": {"registry.example.org/bob/x:1"}}, "only into your own registry namespace"},
		{map[string][]string{"t": {"busybox:latest"}}, "only into your own registry namespace"},
		{map[string][]string{"remote": {"https://example.org/repo.git"}}, "does not fetch build contexts"},
		{map[string][]string{"networkmode": {"host"}}, "networkmode"},
		{map[string][]string{"cgroupparent": {"/"}}, "cgroupparent"},
		{map[string][]string{"ulimits": {`[{"Name":"nofile","Hard":1048576,"Soft":1048576}]`}}, "ulimits"},
		{map[string][]string{"memory": {"68719476736"}}, "quota"},
		{map[string][]string{"cpuquota": {"900000"}, "cpuperiod": {"100000"}}, "quota"},
		{map[string][]string{"securityopt": {"seccomp=unconfined"}}, "securityopt"},
		{map[string][]string{"outputs": {`[{"Type":"local"}]`}}, "outputs"},
		{map[string][]string{"squash": {"1"}}, "squash"},
		{map[string][]string{"dockerfile": {"../../etc/passwd"}}, "inside the build context"},
		{map[string][]string{"frobnicate": {"1"}}, "not available"},
	}
	for _, c := range cases {
		p, err := a.checkBuild(alice, c.params)
		if c.refuse == "" {
			if err != nil {
				t.Errorf("%v refused: %v", c.params, err)
				continue
			}
			if p.opts.Memory <= 0 || p.opts.Memory > DefaultConfig().Student.MaxMemory || p.opts.CPUQuota <= 0 ||
				p.opts.NetworkMode != "" || p.opts.CgroupParent != "" || p.opts.PullParent || len(p.opts.Ulimits) > 0 {
				t.Errorf("%v: unsafe engine options %+v", c.params, p.opts)
			}
			if p.opts.Labels[LabelOwner] != "alice" {
				t.Errorf("%v: labels %v", c.params, p.opts.Labels)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.refuse) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: got %v, want one line with %q", c.params, err, c.refuse)
		}
	}
}

// TestDiffEvents: the snapshot's changes become the engine's container events.
func TestDiffEvents(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := func(id, state string, started time.Time) Container {
		return Container{ID: id, Name: "n" + id, Owner: "alice", Image: "busybox", State: state, StartedAt: started}
	}
	prev := map[string]Container{
		"a": c("a", "running", t0),
		"b": c("b", "exited", t0),
		"d": c("d", "running", t0),
		"e": c("e", "running", t0),
	}
	cur := map[string]Container{
		"a": c("a", "exited", t0),
		"b": c("b", "running", t0.Add(time.Second)),
		"c": c("c", "running", t0),
		"e": c("e", "running", t0.Add(time.Minute)),
	}
	var got []string
	for _, ev := range diffEvents(prev, cur, time.Now()) {
		got = append(got, ev.Actor.ID+":"+ev.Action+":"+ev.Actor.Attributes["name"])
	}
	want := []string{"a:die:na", "b:start:nb", "c:create:nc", "c:start:nc", "e:restart:ne", "d:destroy:nd"}
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	f := APIEventFilters{"container": {"nc"}, "event": {"start"}}
	n := 0
	for _, ev := range diffEvents(prev, cur, time.Now()) {
		if f.match(ev) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d events pass the filter, want 1", n)
	}
}

// TestUserVolumeNames: two users' volume names never meet on one engine name, and only
// the user's own engine names map back.
func TestUserVolumeNames(t *testing.T) {
	s := newService(DefaultConfig(), nil, nil)
	a := s.cfg.userVolumeEngineName("alice", "x-y")
	b := s.cfg.userVolumeEngineName("alice-x", "y")
	if a == b {
		t.Fatalf("alice's x-y and alice-x's y share %s", a)
	}
	if n, ok := s.userVolumeName("alice", a); !ok || n != "x-y" {
		t.Errorf("userVolumeName(alice, %s) = %q, %v", a, n, ok)
	}
	if _, ok := s.userVolumeName("alice", b); ok {
		t.Errorf("alice claims %s", b)
	}
	if _, ok := s.userVolumeName("alice", s.cfg.volumeName("alice")); ok {
		t.Error("the home volume counts as a named volume")
	}
}

// TestCheckCreateRunnerSocket: through a runner's socket, a bind of exactly the socket's
// directory as the runner sees it is planned as the owner's API socket (the host path is the server's to
// place); any other spelling, option or second bind is refused, and through any other door
// the same bind is a host path.
func TestCheckCreateRunnerSocket(t *testing.T) {
	runnerRules := testRules()
	runnerRules.runnerSocket = true
	binds := func(b ...string) map[string]any { return map[string]any{"HostConfig.Binds": b} }
	for _, c := range []struct {
		name   string
		rules  createRules
		set    map[string]any
		target string // "" for refused
		want   string
	}{
		{"exact", runnerRules, binds(RunnerSocketDirBind + ":/run/whalemountain"), "/run/whalemountain", ""},
		{"rw", runnerRules, binds(RunnerSocketDirBind + ":/run/d/:rw"), "/run/d", ""},
		{"ro", runnerRules, binds(RunnerSocketDirBind + ":/run/d:ro"), "/run/d", ""},
		{"another door", testRules(), binds(RunnerSocketDirBind + ":/run/whalemountain"), "", "paths of the server are not mounted"},
		{"the socket file", runnerRules, binds(RunnerSocketDirBind + "/docker.sock:/var/run/docker.sock"), "", "the Docker socket is never mounted"},
		{"dot-dot", runnerRules, binds("/etc/gitlab-runner/../gitlab-runner/api:/s"), "", "paths of the server are not mounted"},
		{"trailing slash", runnerRules, binds(RunnerSocketDirBind + "/:/s"), "", "paths of the server are not mounted"},
		{"the directory", runnerRules, binds("/etc/gitlab-runner:/s"), "", "paths of the server are not mounted"},
		{"twice", runnerRules, binds(RunnerSocketDirBind+":/a", RunnerSocketDirBind+":/b"), "", "mounted once"},
		{"propagation", runnerRules, binds(RunnerSocketDirBind + ":/a:rshared"), "", "option rshared is not allowed"},
		{"over the home", runnerRules, binds(RunnerSocketDirBind + ":/home/alice"), "", "is your home"},
		{"as a mount", runnerRules, map[string]any{"HostConfig.Mounts": []map[string]any{{"Type": "bind", "Source": RunnerSocketDirBind, "Target": "/s"}}},
			"", "paths of the server are not mounted"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := decodeCreate(createBody(t, c.set))
			if err != nil {
				t.Fatal(err)
			}
			p, err := checkCreate(req, c.rules)
			switch {
			case c.target != "" && (err != nil || p.apiSocket != c.target):
				t.Errorf("want the socket planned at %s: plan %q, err %v", c.target, p.apiSocket, err)
			case c.target == "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("want a refusal with %q, got %v (plan %q)", c.want, err, p.apiSocket)
			case c.target != "" && (len(p.host.Binds) > 0 || len(p.host.Mounts) > 0):
				t.Errorf("the plan's host config carries a host path: %+v", p.host)
			}
		})
	}
}

// The name an API create asks for: as the engine takes it ("/box"), made valid for a
// runner's job (whose names gitlab-runner makes up), refused when invalid otherwise.
func TestAPICreateName(t *testing.T) {
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	runner := alice
	runner.KeySource = backend.KeySourceRunner
	job := "runner-abc-project-1-concurrent-0-aaaa-build"
	for _, c := range []struct {
		id        backend.Identity
		name      string
		want      string
		wantValid bool
	}{
		{alice, "", "", true},
		{alice, "/box", "box", true},
		{alice, "box", "box", true},
		{alice, "Bad_Name!", "", false},
		{alice, job, "", false},
		{runner, job, runnerJobName(job), true},
		{runner, "/box", "box", true},
	} {
		got, err := apiCreateName(c.id, c.name)
		if (err == nil) != c.wantValid || c.wantValid && got != c.want {
			t.Errorf("%s %q: %q %v, want %q", c.id.KeySource, c.name, got, err, c.want)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v is not ErrInvalid", c.name, err)
		}
		if err == nil && got != "" && ValidateName(got) != nil {
			t.Errorf("%q became %q, not a valid name", c.name, got)
		}
	}
}

// CPU and memory: what was asked (checkCreate held it to the quota), else the configured
// default, never above the quota.
func TestAPILimits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DefaultCPUs, cfg.DefaultMemory = 2, 4<<30
	roomy, tight := Quota{MaxCPUs: 8, MaxMemory: 16 << 30}, Quota{MaxCPUs: 1, MaxMemory: 1 << 30}
	for _, c := range []struct {
		p    createPlan
		q    Quota
		want limits
	}{
		{createPlan{}, roomy, limits{cpus: 2, memory: 4 << 30}},
		{createPlan{}, tight, limits{cpus: 1, memory: 1 << 30}},
		{createPlan{cpus: 0.5, memory: 256 << 20}, roomy, limits{cpus: 0.5, memory: 256 << 20}},
		{createPlan{cpus: 6}, roomy, limits{cpus: 6, memory: 4 << 30}},
	} {
		if got := apiLimits(c.p, &cfg, c.q); got != c.want {
			t.Errorf("%g CPUs %d bytes under %+v: %+v, want %+v", c.p.cpus, c.p.memory, c.q, got, c.want)
		}
	}
}

// --volumes-from adds a volume only where nothing of the request, the home, or the shared
// data the server places is mounted already.
func TestAddFromMounts(t *testing.T) {
	vol := func(src, target string) mount.Mount {
		return mount.Mount{Type: mount.TypeVolume, Source: src, Target: target}
	}
	mounts := []mount.Mount{vol("home", "/home/alice"), vol("cache", "/cache")}
	placed := []mount.Mount{{Type: mount.TypeBind, Source: "/srv/datasets/imagenet", Target: "/datasets/imagenet"}}
	from := []mount.Mount{vol("other-home", "/home/alice"), vol("data", "/data"), vol("sneaky", "/datasets/imagenet"),
		vol("cache2", "/cache"), vol("data2", "/data")}
	got := addFromMounts(slices.Clone(mounts), from, placed)
	var targets []string
	for _, m := range got {
		targets = append(targets, m.Source+":"+m.Target)
	}
	want := []string{"home:/home/alice", "cache:/cache", "data:/data"}
	if !slices.Equal(targets, want) {
		t.Errorf("mounts %q, want %q", targets, want)
	}
}

// A user's named volume keeps what was asked of it (read-only, no copy, a sub path) under
// the engine's name for it.
func TestVolumeMount(t *testing.T) {
	for _, c := range []struct {
		v    volumeUse
		want mount.Mount
	}{
		{volumeUse{name: "data", target: "/data"}, mount.Mount{Type: mount.TypeVolume, Source: "wm-alice-data", Target: "/data"}},
		{volumeUse{name: "data", target: "/data", readOnly: true}, mount.Mount{Type: mount.TypeVolume, Source: "wm-alice-data", Target: "/data", ReadOnly: true}},
		{volumeUse{name: "data", target: "/d", noCopy: true, subpath: "x"}, mount.Mount{Type: mount.TypeVolume, Source: "wm-alice-data", Target: "/d",
			VolumeOptions: &mount.VolumeOptions{NoCopy: true, Subpath: "x"}}},
	} {
		got := volumeMount("wm-alice-data", c.v)
		if got.Type != c.want.Type || got.Source != c.want.Source || got.Target != c.want.Target || got.ReadOnly != c.want.ReadOnly ||
			(got.VolumeOptions == nil) != (c.want.VolumeOptions == nil) ||
			got.VolumeOptions != nil && (got.VolumeOptions.NoCopy != c.want.VolumeOptions.NoCopy || got.VolumeOptions.Subpath != c.want.VolumeOptions.Subpath) {
			t.Errorf("%+v: %+v, want %+v", c.v, got, c.want)
		}
	}
}

// On its network a container answers to its name first, then to the aliases asked for.
func TestNamesOnNetwork(t *testing.T) {
	asked := []string{"db", "box", "cache"}
	if got := namesOnNetwork("box", asked); !slices.Equal(got, []string{"box", "db", "cache"}) {
		t.Errorf("names %q", got)
	}
	if !slices.Equal(asked, []string{"db", "box", "cache"}) {
		t.Errorf("the plan's aliases changed: %q", asked)
	}
	if got := namesOnNetwork("box", nil); !slices.Equal(got, []string{"box"}) {
		t.Errorf("names %q", got)
	}
}

// A container the request names is one of the user's own, or the field is refused as
// naming no such container (never as missing: the docker CLI would pull).
func TestOwnAmong(t *testing.T) {
	mine := []container.Summary{{ID: "abc" + strings.Repeat("0", 61), Labels: map[string]string{LabelName: "box"}}}
	if c, err := ownAmong(mine, "HostConfig.VolumesFrom", "--volumes-from", "box"); err != nil || c.ID != mine[0].ID {
		t.Errorf("own box: %v %v", c.ID, err)
	}
	for _, ref := range []string{"bob-box", "wm-bob-box", "fff"} {
		_, err := ownAmong(mine, "HostConfig.VolumesFrom", "--volumes-from", ref)
		if !errors.Is(err, ErrInvalid) || err.Error() != "--volumes-from (HostConfig.VolumesFrom): no such container: "+ref {
			t.Errorf("%q: %v", ref, err)
		}
	}
}
