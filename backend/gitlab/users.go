package gitlab

import (
	"context"
	"fmt"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"
)

// maxKeys bounds how many keys UserKeys collects for one user (pages of 100).
const maxKeys = 1000

// User is a GitLab account as far as logging in is concerned.
type User struct {
	ID       int64
	Username string
	Name     string
	State    string // "active", "blocked", "deactivated", ...
	Locked   bool
}

// Key is one SSH public key registered on a GitLab account.
type Key struct {
	ID        int64
	Title     string
	Key       string     // authorized_keys text: "ssh-ed25519 AAAA... comment"
	ExpiresAt *time.Time // nil: never expires
	UsageType string     // "auth", "auth_and_signing" ("" from GitLab before 15.7)
}

// UserKeys looks username up and returns the account and the keys it may authenticate with:
// expired keys and keys registered for signing only are left out. A name GitLab does not
// know gives ErrNoSuchUser; an account that is not active, or is locked, gives a
// *BlockedError (ErrBlocked) together with the account.
func (c *Client) UserKeys(ctx context.Context, username string) (User, []Key, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()

	found, err := c.lookUpUser(ctx, username)
	if err != nil {
		return User{}, nil, fmt.Errorf("gitlab: user %q: %w", username, err)
	}
	user := User{ID: found.ID, Username: found.Username, Name: found.Name, State: found.State, Locked: found.Locked}
	if user.State != "active" || user.Locked {
		return user, nil, &BlockedError{Username: user.Username, State: user.State, Locked: user.Locked}
	}

	all, err := gl.ScanAndCollectN(func(p gl.PaginationOptionFunc) ([]*gl.SSHKey, *gl.Response, error) {
		opt := &gl.ListSSHKeysForUserOptions{ListOptions: gl.ListOptions{PerPage: 100}}
		return c.api.Users.ListSSHKeysForUser(user.ID, opt, gl.WithContext(ctx), p)
	}, maxKeys)
	if err != nil {
		return user, nil, fmt.Errorf("gitlab: list keys of %q (id %d): %w", user.Username, user.ID, err)
	}
	now := c.now()
	keys := make([]Key, 0, len(all))
	for _, k := range all {
		if k == nil || !usableKey(k, now) {
			continue
		}
		keys = append(keys, Key{ID: k.ID, Title: k.Title, Key: k.Key, ExpiresAt: k.ExpiresAt, UsageType: k.UsageType})
	}
	return user, keys, nil
}

// usableKey reports whether k may authenticate at now: not expired, not for signing only.
func usableKey(k *gl.SSHKey, now time.Time) bool {
	if k.ExpiresAt != nil && !k.ExpiresAt.After(now) {
		return false
	}
	return k.UsageType != "signing"
}
