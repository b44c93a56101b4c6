package gitlab

import (
	"context"
	"errors"
	"fmt"
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
