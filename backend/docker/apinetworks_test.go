package docker

import (
	"errors"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/network"
)

func TestCheckNetworkCreate(t *testing.T) {
	yes, no := true, false
	for _, c := range []struct {
		name string
		req  apiNetworkCreate
		err  error
		want string // in the error; "" for allowed
	}{
		{"plain", apiNetworkCreate{Name: "mynet"}, nil, ""},
		{"compose", apiNetworkCreate{Name: "lab_default", Driver: "bridge", Attachable: true, EnableIPv6: &no,
			IPAM: &network.IPAM{Driver: "default"}, Labels: map[string]string{"com.docker.compose.project": "lab"}}, nil, ""},
		{"internal", apiNetworkCreate{Name: "quiet", Internal: true}, nil, ""},
		{"bridge", apiNetworkCreate{Name: "bridge"}, ErrPermission, "pre-defined network"},
		{"host", apiNetworkCreate{Name: "host"}, ErrPermission, "pre-defined network"},
		{"bad name", apiNetworkCreate{Name: "../x"}, ErrInvalid, "invalid network name"},
		{"empty name", apiNetworkCreate{}, ErrInvalid, "invalid network name"},
		{"driver", apiNetworkCreate{Name: "n", Driver: "macvlan"}, ErrPermission, "--driver (Driver)"},
		{"options", apiNetworkCreate{Name: "n", Options: map[string]string{"com.docker.network.bridge.name": "eth0"}}, ErrPermission, "--opt (Options)"},
		{"swarm scope", apiNetworkCreate{Name: "n", Scope: "swarm"}, ErrPermission, "--scope (Scope)"},
		{"ipv6", apiNetworkCreate{Name: "n", EnableIPv6: &yes}, ErrPermission, "--ipv6 (EnableIPv6)"},
		{"no ipv4", apiNetworkCreate{Name: "n", EnableIPv4: &no}, ErrPermission, "--ipv4 (EnableIPv4)"},
		{"ingress", apiNetworkCreate{Name: "n", Ingress: true}, ErrPermission, "--ingress (Ingress)"},
		{"config only", apiNetworkCreate{Name: "n", ConfigOnly: true}, ErrPermission, "--config-from"},
		{"config from", apiNetworkCreate{Name: "n", ConfigFrom: &network.ConfigReference{Network: "x"}}, ErrPermission, "--config-from"},
		{"ipam driver", apiNetworkCreate{Name: "n", IPAM: &network.IPAM{Driver: "dhcp"}}, ErrPermission, "--ipam-driver (IPAM.Driver)"},
		{"subnet", apiNetworkCreate{Name: "n", IPAM: &network.IPAM{Config: []network.IPAMConfig{{}}}}, ErrPermission, "--subnet (IPAM.Config)"},
		{"ipam options", apiNetworkCreate{Name: "n", IPAM: &network.IPAM{Options: map[string]string{"a": "b"}}}, ErrPermission, "--ipam-opt"},
		{"bad label", apiNetworkCreate{Name: "n", Labels: map[string]string{"-x": "y"}}, ErrInvalid, "--label (Labels)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			labels, err := checkNetworkCreate(c.req)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				for k := range labels {
					if strings.HasPrefix(k, "whalemountain.") {
						t.Errorf("a server label kept from the request: %s", k)
					}
				}
				return
			}
			if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %v saying %q", err, c.err, c.want)
			}
		})
	}
	labels, err := checkNetworkCreate(apiNetworkCreate{Name: "n", Labels: map[string]string{
		"whalemountain.owner": "bob", "whalemountain.kind": "network", "course": "os"}})
	if err != nil || len(labels) != 1 || labels["course"] != "os" {
		t.Errorf("labels kept from a request: %v, %v", labels, err)
	}
}

func TestResolveNetwork(t *testing.T) {
	net := func(name, id string) userNet {
		return userNet{name: name, summary: network.Summary{Network: network.Network{ID: id}}}
	}
	nets := []userNet{net("bridge", "aa11"), net("mynet", "bb22"), net("other", "bb33")}
	for _, c := range []struct {
		ref, want string
		err       error
	}{
		{"bridge", "bridge", nil},
		{"default", "bridge", nil},
		{"mynet", "mynet", nil},
		{"bb22", "mynet", nil},
		{"bb3", "other", nil},
		{"a", "bridge", nil},
		{"bb", "", ErrInvalid},
		{"cc", "", ErrNotFound},
		{"bobnet", "", ErrNotFound},
		{"", "", ErrNotFound},
	} {
		n, err := resolveNetwork(nets, c.ref)
		if n.name != c.want || !errors.Is(err, c.err) {
			t.Errorf("resolveNetwork(%q) = %q, %v; want %q, %v", c.ref, n.name, err, c.want, c.err)
		}
	}
	if _, err := resolveNetwork(nets, "bobnet"); err.Error() != "network bobnet not found" {
		t.Errorf("not found reads %q", err)
	}
}

func TestNetworkMatches(t *testing.T) {
	n := network.Inspect{Network: network.Network{Name: "lab_default", ID: "abc123", Driver: "bridge", Scope: "local",
		Labels: map[string]string{"com.docker.compose.project": "lab", "x": ""}}}
	for _, c := range []struct {
		f    map[string][]string
		want bool
	}{
		{nil, true},
		{map[string][]string{"name": {"lab"}}, true},
		{map[string][]string{"name": {"zzz"}}, false},
		{map[string][]string{"name": {"zzz", "default"}}, true},
		{map[string][]string{"id": {"abc"}}, true},
		{map[string][]string{"id": {"bc"}}, false},
		{map[string][]string{"label": {"com.docker.compose.project=lab"}}, true},
		{map[string][]string{"label": {"com.docker.compose.project=other"}}, false},
		{map[string][]string{"label": {"x"}}, true},
		{map[string][]string{"label": {"x", "y"}}, false},
		{map[string][]string{"driver": {"bridge"}}, true},
		{map[string][]string{"type": {"custom"}}, true},
		{map[string][]string{"type": {"builtin"}}, false},
		{map[string][]string{"scope": {"swarm"}}, false},
	} {
		if got := networkMatches(n, false, c.f); got != c.want {
			t.Errorf("networkMatches(%v) = %v, want %v", c.f, got, c.want)
		}
	}
	if !networkMatches(n, true, map[string][]string{"type": {"builtin"}}) {
		t.Error("a builtin network does not match type=builtin")
	}
}

func TestEndpointAliases(t *testing.T) {
	if a, err := endpointAliases(&network.EndpointSettings{Aliases: []string{"db", "db", "cache_1"}}, "EndpointConfig"); err != nil || len(a) != 2 {
		t.Errorf("aliases %v, %v", a, err)
	}
	for _, ep := range []*network.EndpointSettings{
		{Links: []string{"bob-box:db"}},
		{Aliases: []string{"Bad Alias"}},
		{DriverOpts: map[string]string{"a": "b"}},
		{Aliases: []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9"}},
	} {
		if _, err := endpointAliases(ep, "EndpointConfig"); err == nil {
			t.Errorf("endpoint %+v allowed", ep)
		}
	}
}
