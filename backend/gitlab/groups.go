package gitlab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"
)

// GitLab access levels.
const (
	NoAccess   = 0
	Guest      = 10
	Reporter   = 20
	Developer  = 30
	Maintainer = 40
	Owner      = 50
)

// GroupAccessLevel returns the access level userID holds in group (a numeric ID or a full
// path such as "dept/tas"), counting membership inherited from parent groups. A user who is
// not a member, a membership that has expired, or a group GitLab does not show gives
// NoAccess and no error.
func (c *Client) GroupAccessLevel(ctx context.Context, group string, userID int64) (int, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()

	m, _, err := c.api.GroupMembers.GetInheritedGroupMember(group, userID, gl.WithContext(ctx))
	if errors.Is(err, gl.ErrNotFound) {
		return NoAccess, nil
	}
	if err != nil {
		return NoAccess, fmt.Errorf("gitlab: membership of user %d in group %q: %w", userID, group, err)
	}
	if m == nil {
		return NoAccess, nil
	}
	if m.ExpiresAt != nil {
		// A membership ends at the start of its expiry day (UTC); GitLab removes it soon after.
		if !c.now().Before(time.Time(*m.ExpiresAt)) {
			return NoAccess, nil
		}
	}
	return int(m.AccessLevel), nil
}

// Limits on what one listing collects.
const (
	maxGroupMembers     = 5000
	maxDescendantGroups = 2000
	groupPerPage        = 100
)

// GroupMembers lists the usernames of the members of group (a numeric ID or a full path),
// inherited members included (GET /groups/:id/members/all), at or above minLevel, sorted.
// Memberships that have expired, and accounts that are not active, are left out. A group
// GitLab does not show gives ErrNoSuchGroup.
func (c *Client) GroupMembers(ctx context.Context, group string, minLevel int) ([]string, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	ms, err := gl.ScanAndCollectN(func(p gl.PaginationOptionFunc) ([]*gl.GroupMember, *gl.Response, error) {
		opt := &gl.ListGroupMembersOptions{ListOptions: gl.ListOptions{PerPage: groupPerPage}}
		return c.api.Groups.ListAllGroupMembers(group, opt, gl.WithContext(ctx), p)
	}, maxGroupMembers)
	if errors.Is(err, gl.ErrNotFound) {
		return nil, fmt.Errorf("gitlab: members of group %q: %w", group, ErrNoSuchGroup)
	}
	if err != nil {
		return nil, fmt.Errorf("gitlab: members of group %q: %w", group, err)
	}
	now := c.now()
	seen := map[string]bool{}
	out := []string{}
	for _, m := range ms {
		switch {
		case m == nil || m.Username == "" || int(m.AccessLevel) < minLevel:
			continue
		case m.State != "" && m.State != "active":
			continue
		case m.ExpiresAt != nil && !now.Before(time.Time(*m.ExpiresAt)):
			continue
		}
		u := strings.ToLower(m.Username)
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out, nil
}

// DescendantGroups lists the full paths of every group below parent (GET
// /groups/:id/descendant_groups), sorted. A parent GitLab does not show gives ErrNoSuchGroup.
func (c *Client) DescendantGroups(ctx context.Context, parent string) ([]string, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	gs, err := gl.ScanAndCollectN(func(p gl.PaginationOptionFunc) ([]*gl.Group, *gl.Response, error) {
		opt := &gl.ListDescendantGroupsOptions{ListOptions: gl.ListOptions{PerPage: groupPerPage}}
		return c.api.Groups.ListDescendantGroups(parent, opt, gl.WithContext(ctx), p)
	}, maxDescendantGroups)
	if errors.Is(err, gl.ErrNotFound) {
		return nil, fmt.Errorf("gitlab: groups below %q: %w", parent, ErrNoSuchGroup)
	}
	if err != nil {
		return nil, fmt.Errorf("gitlab: groups below %q: %w", parent, err)
	}
	out := make([]string, 0, len(gs))
	for _, g := range gs {
		if g != nil && g.FullPath != "" {
			out = append(out, g.FullPath)
		}
	}
	slices.Sort(out)
	return out, nil
}

// ErrNoSuchGroup means GitLab shows no group by that ID or path.
var ErrNoSuchGroup = errors.New("no such gitlab group")
