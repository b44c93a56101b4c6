package kube

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestClaimNamesAreDNSLabelsAndNeverShared(t *testing.T) {
	seen := map[string]string{}
	for _, tc := range []struct{ kind, what string }{
		{dataDataset, "imagenet"}, {dataDataset, "image_net"}, {dataDataset, "image-net"}, {dataDataset, "image.net"},
		{dataGroup, "os-2026/team-a"}, {dataGroup, "os-2026/team.a"}, {dataGroup, "OS-2026/team-a"},
		{dataGroup, strings.Repeat("very-long-group/", 12) + "x"}, {dataDataset, "---"}, {dataGroup, "imagenet"},
	} {
		n := claimName(tc.kind, tc.what)
		if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
			t.Errorf("claimName(%s, %q) = %q: not a DNS label: %v", tc.kind, tc.what, n, errs)
		}
		if !strings.HasPrefix(n, tc.kind+"-") {
			t.Errorf("claimName(%s, %q) = %q does not say what it is", tc.kind, tc.what, n)
		}
		if prev, ok := seen[n]; ok {
			t.Errorf("claimName(%s, %q) = %q, as for %s", tc.kind, tc.what, n, prev)
		}
		seen[n] = tc.kind + " " + tc.what
		if errs := validation.IsDNS1123Subdomain(volumeName(DefaultConfig().Namespace(strings.Repeat("u", 64)), n)); len(errs) > 0 {
			t.Errorf("volume name for %q: %v", n, errs)
		}
	}
}

func TestValidateSharedData(t *testing.T) {
	nfs := VolumeSource{NFSServer: "nfs.example.org", NFSPath: "/export/data"}
	groupNFS := VolumeSource{NFSServer: "10.0.0.5", NFSPath: "/export/groups/{group}"}
	ok := func(c *Config) {
		c.Datasets = []Dataset{{Name: "imagenet", Source: nfs}, {Name: "local", Source: VolumeSource{HostPath: "/srv/data"}, Roles: []string{"ta"}}}
		c.Groups = []GroupWorkspace{{Group: "os-2026/team-*", Source: groupNFS, Size: gib}}
	}
	c := DefaultConfig()
	ok(&c)
	if err := c.Validate(); err != nil {
		t.Fatalf("a good config: %v", err)
	}
	for _, tc := range []struct {
		field string
		mut   func(*Config)
	}{
		{"Datasets[0].Name", func(c *Config) { c.Datasets[0].Name = "Bad Name" }},
		{"Datasets[1].Name", func(c *Config) { c.Datasets[1].Name = "imagenet" }},
		{"Datasets[0].Source", func(c *Config) { c.Datasets[0].Source = VolumeSource{} }},
		{"Datasets[0].Source", func(c *Config) { c.Datasets[0].Source.HostPath = "/srv/x" }},
		{"Datasets[0].Source", func(c *Config) { c.Datasets[0].Source.NFSServer = "" }},
		{"Datasets[0].Source", func(c *Config) { c.Datasets[0].Source.NFSServer = "bad host!" }},
		{"Datasets[0].Source", func(c *Config) { c.Datasets[0].Source.NFSPath = "relative" }},
		{"Datasets[0].Source", func(c *Config) { c.Datasets[0].Source.NFSPath = "/export/{group}" }},
		{"Datasets[1].Source", func(c *Config) { c.Datasets[1].Source.HostPath = "/var/run/docker.sock" }},
		{"Datasets[1].Source", func(c *Config) { c.Datasets[1].Source.HostPath = "/etc" }},
		{"Datasets[1].Source", func(c *Config) { c.Datasets[1].Source.HostPath = "/" }},
		{"Datasets[0].Target", func(c *Config) { c.Datasets[0].Target = "/home/x" }},
		{"Datasets[1].Target", func(c *Config) { c.Datasets[1].Target = "/datasets/imagenet" }},
		{"Datasets[0].Roles", func(c *Config) { c.Datasets[0].Roles = []string{"admin"} }},
		{"Datasets[0].Groups", func(c *Config) { c.Datasets[0].Groups = []string{"os-2026/*"} }},
		{"Groups[0].Group", func(c *Config) { c.Groups[0].Group = "*/x" }},
		{"Groups[0].Size", func(c *Config) { c.Groups[0].Size = -1 }},
		{"Groups[0].Source", func(c *Config) { c.Groups[0].Source.NFSPath = "/export/groups" }},
		{"Groups[0].Source", func(c *Config) { c.Groups[0].Source = VolumeSource{HostPath: "/srv/groups/{group}/{group}"} }},
		{"Groups[0].Target", func(c *Config) { c.Groups[0].Target = "/groups/x{group}" }},
		{"Groups[0].Target", func(c *Config) { c.Groups[0].Target = "/home/{group}" }},
		{"Groups[0].Target", func(c *Config) { c.Groups[0].Target = "/datasets/{group}" }},
		{"SharedRepairEvery", func(c *Config) { c.SharedRepairEvery = -1 }},
	} {
		c := DefaultConfig()
		ok(&c)
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Validate() = %v, want an error naming the field", tc.field, err)
		}
	}
}

func TestDataVolumesAreReadOnlyForDatasets(t *testing.T) {
	claims := []dataClaim{
		{kind: dataDataset, what: "imagenet", target: "/datasets/imagenet", readOnly: true},
		{kind: dataGroup, what: "os/team-a", target: "/groups/os/team-a"},
	}
	vols, mounts := dataVolumes(claims)
	if len(vols) != 2 || len(mounts) != 2 {
		t.Fatalf("volumes %v mounts %v", vols, mounts)
	}
	if !vols[0].PersistentVolumeClaim.ReadOnly || !mounts[0].ReadOnly || mounts[0].MountPath != "/datasets/imagenet" {
		t.Errorf("dataset: %+v %+v", vols[0], mounts[0])
	}
	if vols[1].PersistentVolumeClaim.ReadOnly || mounts[1].ReadOnly || mounts[1].MountPath != "/groups/os/team-a" {
		t.Errorf("group: %+v %+v", vols[1], mounts[1])
	}
	if vols[0].Name != mounts[0].Name || vols[0].PersistentVolumeClaim.ClaimName != claimName(dataDataset, "imagenet") {
		t.Errorf("names: %+v %+v", vols[0], mounts[0])
	}
}
