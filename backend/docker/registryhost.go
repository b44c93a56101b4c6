package docker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/distribution/reference"
)

// LookupFunc resolves a registry's host name to its addresses.
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// ImageOption changes how an ImageService works.
type ImageOption func(*imageOptions)

type imageOptions struct {
	lookup LookupFunc
	log    *slog.Logger
}

// WithLookup resolves registry host names with lookup instead of the system resolver.
func WithLookup(lookup LookupFunc) ImageOption {
	return func(o *imageOptions) {
		if lookup != nil {
			o.lookup = lookup
		}
	}
}

// WithLogger sends what the engine and registries answered to failed requests to logger
// (users never see it) instead of slog.Default().
func WithLogger(logger *slog.Logger) ImageOption {
	return func(o *imageOptions) {
		if logger != nil {
			o.log = logger
		}
	}
}

// registryLookupTimeout bounds the name lookup before a pull.
const registryLookupTimeout = 3 * time.Second

func systemLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// registryHostname is the host of a registry domain, without port or IPv6 brackets:
// "registry.ie.example:5000" -> "registry.ie.example", "[::1]:5000" -> "::1".
func registryHostname(domain string) string {
	if rest, ok := strings.CutPrefix(domain, "["); ok {
		host, _, _ := strings.Cut(rest, "]")
		return host
	}
	host, _, _ := strings.Cut(domain, ":")
	return host
}

// registryDomain checks that s is a registry host[:port] as image references name one
// ("registry.ie.example", "10.0.0.5:5000", "[fd00::5]:5000", "localhost") and returns it
// lower-cased.
func registryDomain(s string) (string, bool) {
	named, err := reference.ParseNormalizedNamed(s + "/x")
	if err != nil || reference.Domain(named) != s || s == "docker.io" {
		return "", false
	}
	return strings.ToLower(s), true
}

// nonPublic are the networks a registry on the public internet is never in: this host's and
// its site's own, reserved and special-purpose ones. Loopback, private, link-local,
// unspecified and multicast addresses are recognised by netip itself.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the broadcast address
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated), :: and ::1
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments, Teredo among them
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// isPublicAddr reports whether a is an address on the public internet: not loopback,
// private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local, unspecified, multicast,
// carrier-grade NAT or otherwise reserved. An IPv4 address inside IPv6 (mapped, NAT64,
// 6to4) is judged as that IPv4 address.
func isPublicAddr(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if !a.IsValid() || !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	if a.Is6() && (nat64.Contains(a) || sixToFour.Contains(a)) {
		b := a.As16()
		v4 := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if sixToFour.Contains(a) {
			v4 = netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
		}
		return isPublicAddr(v4)
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// checkRegistry decides whether the engine may be sent to the registry of named: Docker Hub
// and the registries the administrator named are fine; any other must be on the public
// internet, its name resolved here and every address it has checked. Refusals are
// ErrPermission errors, worded for the user after "pull IMAGE: ".
func (is *ImageService) checkRegistry(ctx context.Context, named reference.Named) error {
	domain := reference.Domain(named)
	lower := strings.ToLower(domain)
	if lower == "docker.io" || is.policy.internal[lower] {
		return nil
	}
	ownNetwork := errorf(ErrPermission, "registry %s is not allowed: it is on the server's own network", shown(domain))
	host := registryHostname(lower)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return ownNetwork
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if !isPublicAddr(addr) {
			return ownNetwork
		}
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, registryLookupTimeout)
	defer cancel()
	addrs, err := is.lookup(lctx, host)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil || len(addrs) == 0 {
		is.log.Info("registry name did not resolve", "registry", domain, "err", fmt.Sprint(err))
		return errorf(ErrPermission, "registry %s is not allowed: its name could not be resolved", shown(domain))
	}
	for _, a := range addrs {
		if !isPublicAddr(a) {
			is.log.Warn("pull from a registry on the server's own network refused", "registry", domain, "address", a.String())
			return ownNetwork
		}
	}
	return nil
}
