package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"
)

// Runners: checking a runner authentication token, and, with a server token allowed to,
// creating, resetting and deleting project runners. A runner token never appears in an
// error these methods return (client-go puts it in the query of a DELETE, and transport
// errors repeat the URL).

// ErrRunnerToken means GitLab does not accept the runner authentication token (unknown,
// revoked or expired).
var ErrRunnerToken = errors.New("gitlab does not accept this runner token")

// redact replaces every appearance of secret in err's text.
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redacted{msg: strings.ReplaceAll(err.Error(), secret, "[token]"), err: err}
}

// redacted keeps the kind of an error (errors.Is, IsUnavailable) with its text scrubbed.
type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// VerifyRunner asks GitLab whether token is a valid runner authentication token
// (POST /runners/verify) and returns the runner's ID from GitLab's answer (0 when it gives
// none). GitLab's 403 is ErrRunnerToken. client-go's VerifyRegisteredRunner drops the
// answer's body, so the request is made with its NewRequest and Do.
func (c *Client) VerifyRunner(ctx context.Context, token string) (int64, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	req, err := c.api.NewRequest(http.MethodPost, "runners/verify", &gl.VerifyRegisteredRunnerOptions{Token: &token},
		[]gl.RequestOptionFunc{gl.WithContext(ctx)})
	if err != nil {
		return 0, redact(fmt.Errorf("gitlab: verify runner token: %w", err), token)
	}
	var out struct {
		ID int64 `json:"id"`
	}
	resp, err := c.api.Do(req, &out)
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized) {
			return 0, ErrRunnerToken
		}
		return 0, redact(fmt.Errorf("gitlab: verify runner token: %w", err), token)
	}
	return out.ID, nil
}

// DeleteRunner unregisters the runner whose authentication token is token
// (DELETE /runners). A token GitLab no longer knows counts as deleted.
func (c *Client) DeleteRunner(ctx context.Context, token string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.api.Runners.DeleteRegisteredRunner(&gl.DeleteRegisteredRunnerOptions{Token: &token}, gl.WithContext(ctx))
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusForbidden {
			return nil
		}
		return redact(fmt.Errorf("gitlab: delete runner: %w", err), token)
	}
	return nil
}

// ProjectRunner is a runner GitLab made: its ID and authentication token (shown once).
type ProjectRunner struct {
	ID    int64
	Token string
}

// ProjectAccessLevel returns the access level username holds in project (a path such as
// "alice/demo"), counting inherited membership; NoAccess when none or GitLab hides it.
func (c *Client) ProjectAccessLevel(ctx context.Context, project, username string) (int, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	u, err := c.lookUpUser(ctx, username)
	if err != nil {
		return NoAccess, fmt.Errorf("gitlab: user %q: %w", username, err)
	}
	m, _, err := c.api.ProjectMembers.GetInheritedProjectMember(project, u.ID, gl.WithContext(ctx))
	if errors.Is(err, gl.ErrNotFound) {
		return NoAccess, nil
	}
	if err != nil {
		return NoAccess, fmt.Errorf("gitlab: membership of %s in project %q: %w", username, project, err)
	}
	if m == nil {
		return NoAccess, nil
	}
	return int(m.AccessLevel), nil
}

// CreateProjectRunner makes a project runner for project (POST /user/runners, the server's
// token must be allowed to) and returns its ID and authentication token.
func (c *Client) CreateProjectRunner(ctx context.Context, project, description string) (ProjectRunner, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	p, _, err := c.api.Projects.GetProject(project, nil, gl.WithContext(ctx))
	if err != nil {
		return ProjectRunner{}, fmt.Errorf("gitlab: project %q: %w", project, err)
	}
	typ := "project_type"
	r, _, err := c.api.Users.CreateUserRunner(&gl.CreateUserRunnerOptions{RunnerType: &typ, ProjectID: &p.ID, Description: &description},
		gl.WithContext(ctx))
	if err != nil {
		return ProjectRunner{}, fmt.Errorf("gitlab: create a runner for %q: %w", project, err)
	}
	return ProjectRunner{ID: r.ID, Token: r.Token}, nil
}

// ResetRunnerToken gives runner id a new authentication token
// (POST /runners/:id/reset_authentication_token); the old one stops working.
func (c *Client) ResetRunnerToken(ctx context.Context, id int64) (string, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	t, _, err := c.api.Runners.ResetRunnerAuthenticationToken(id, gl.WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("gitlab: reset the token of runner %d: %w", id, err)
	}
	if t == nil || t.Token == nil {
		return "", fmt.Errorf("gitlab: reset the token of runner %d: no token in the answer", id)
	}
	return *t.Token, nil
}

// DeleteRunnerByID removes runner id (DELETE /runners/:id) with the server's token.
func (c *Client) DeleteRunnerByID(ctx context.Context, id int64) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.api.Runners.DeleteRegisteredRunnerByID(id, gl.WithContext(ctx))
	if err != nil && !errors.Is(err, gl.ErrNotFound) {
		return fmt.Errorf("gitlab: delete runner %d: %w", id, err)
	}
	return nil
}

// RunnerView is what GitLab says of a runner: online while it asked for jobs within the
// last two hours, its status word (online, offline, stale, never_contacted) and when it
// last asked (zero: never).
type RunnerView struct {
	Online      bool
	Status      string
	ContactedAt time.Time
}

// RunnerView reads runner id (GET /runners/:id) with the server's token, which must be an
// administrator's or belong to a Maintainer of the runner's project.
func (c *Client) RunnerView(ctx context.Context, id int64) (RunnerView, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	d, _, err := c.api.Runners.GetRunnerDetails(id, gl.WithContext(ctx))
	if err != nil {
		return RunnerView{}, fmt.Errorf("gitlab: read runner %d: %w", id, err)
	}
	v := RunnerView{Online: d.Online, Status: d.Status}
	if d.ContactedAt != nil {
		v.ContactedAt = *d.ContactedAt
	}
	return v, nil
}
