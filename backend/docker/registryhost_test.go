package docker

import (
	"net/netip"
	"testing"
)

func TestIsPublicAddr(t *testing.T) {
	public := []string{
		"93.184.216.34", "8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0",
		"192.167.255.255", "192.169.0.0", "169.253.255.255", "11.0.0.0", "223.255.255.254",
		"2606:2800:220:1:248:1893:25c8:1946", "2a00:1450:4001::1", "::ffff:93.184.216.34",
		"64:ff9b::5db8:d822", // NAT64 of 93.184.216.34
		"2002:5db8:d822::1",  // 6to4 of 93.184.216.34
	}
	nonPublic := []string{
		"127.0.0.1", "127.255.255.254", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255",
		"192.168.0.1", "169.254.169.254", "100.64.0.1", "100.127.255.255", "0.0.0.0", "0.1.2.3",
		"224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1", "192.0.2.2", "198.18.0.1", "192.0.0.8",
		"::", "::1", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1", "ff05::2", "fec0::1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b:1::1",
		"2002:7f00:1::1", "2002:c0a8:101::1", "2001:db8::1", "2001::1", "100::1",
	}
	for _, s := range public {
		if !isPublicAddr(netip.MustParseAddr(s)) {
			t.Errorf("%s: not public", s)
		}
	}
	for _, s := range nonPublic {
		if isPublicAddr(netip.MustParseAddr(s)) {
			t.Errorf("%s: public", s)
		}
	}
	if isPublicAddr(netip.Addr{}) {
		t.Error("the zero Addr is public")
	}
}

func TestRegistryHostname(t *testing.T) {
	for in, want := range map[string]string{
		"registry.ie.example":      "registry.ie.example",
		"registry.ie.example:5000": "registry.ie.example",
		"127.0.0.1:5000":           "127.0.0.1",
		"[::1]:5000":               "::1",
		"[fd00::5]":                "fd00::5",
		"localhost":                "localhost",
	} {
		if got := registryHostname(in); got != want {
			t.Errorf("registryHostname(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRegistryDomain(t *testing.T) {
	for _, ok := range []string{"registry.ie.example", "Registry.IE.example:5000", "10.0.0.5", "10.0.0.5:5000", "[fd00::5]:5000", "[::1]", "localhost", "localhost:5000"} {
		if _, good := registryDomain(ok); !good {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", "library", "ubuntu", "docker.io", "https://r.example", "r.example/path", "r.example:port", "a b", "\x1b[2J", "r.example/", ":5000", "[::1"} {
		if d, good := registryDomain(bad); good {
			t.Errorf("%q taken as %q", bad, d)
		}
	}
}
