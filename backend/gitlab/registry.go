package gitlab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"
	"golang.org/x/sync/errgroup"
)

// Bounds on what UserRegistry collects (pages of registryPerPage); anything past them is
// left out.
const (
	maxProjects     = 500  // projects in one personal namespace
	maxRepositories = 500  // registry repositories in one project
	maxTags         = 1000 // tags in one registry repository
	registryPerPage = 100
)

// registryFetchers is how many projects' registries UserRegistry asks for at once.
const registryFetchers = 4

// RegistryTag is one tag of a registry repository.
type RegistryTag struct {
	Name     string // "1.0"
	Location string // "registry.example.org/alice/proj/img:1.0"
}

// RegistryRepository is one container registry repository in a user's personal namespace.
type RegistryRepository struct {
	ID        int64
	ProjectID int64
	Project   string // path_with_namespace of the project, "alice/proj"
	Path      string // "alice/proj/img" (or "alice/proj")
	Location  string // "registry.example.org/alice/proj/img"
	CreatedAt *time.Time
	Tags      []RegistryTag // sorted by name
}

// UserRegistry lists the registry repositories, with their tags, of every project in
// username's personal namespace, sorted by path. Projects in groups are left out, and so is
// a project whose registry is disabled or hidden from the token (GitLab answers 403 or 404
// for it). A name GitLab does not know gives ErrNoSuchUser. At most 500 projects, 500
// repositories per project and 1000 tags per repository are collected.
func (c *Client) UserRegistry(ctx context.Context, username string) ([]RegistryRepository, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()

	user, err := c.lookUpUser(ctx, username)
	if err != nil {
		return nil, fmt.Errorf("gitlab: list registry of %q: %w", username, err)
	}
	projects, err := gl.ScanAndCollectN(func(p gl.PaginationOptionFunc) ([]*gl.Project, *gl.Response, error) {
		opt := &gl.ListProjectsOptions{ListOptions: gl.ListOptions{PerPage: registryPerPage}, Simple: gl.Ptr(true)}
		return c.api.Projects.ListUserProjects(user.ID, opt, gl.WithContext(ctx), p)
	}, maxProjects)
	if errors.Is(err, gl.ErrNotFound) {
		// The account went away between the two requests.
		err = ErrNoSuchUser
	}
	if err != nil {
		return nil, fmt.Errorf("gitlab: list registry of %q: projects of user %d: %w", username, user.ID, err)
	}
	var personal []*gl.Project
	for _, p := range projects {
		if p != nil && p.Namespace != nil && p.Namespace.Kind == "user" &&
			strings.EqualFold(p.Namespace.FullPath, user.Username) {
			personal = append(personal, p)
		}
	}

	found := make([][]RegistryRepository, len(personal))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(registryFetchers)
	for i, p := range personal {
		g.Go(func() error {
			repos, err := c.projectRegistry(gctx, p)
			found[i] = repos
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("gitlab: list registry of %q: %w", username, err)
	}
	all := []RegistryRepository{}
	for _, repos := range found {
		all = append(all, repos...)
	}
	slices.SortFunc(all, func(a, b RegistryRepository) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.ID, b.ID))
	})
	return all, nil
}

// projectRegistry lists the registry repositories of project p with their tags; nothing
// when p's registry is closed to the token.
func (c *Client) projectRegistry(ctx context.Context, p *gl.Project) ([]RegistryRepository, error) {
	repos, err := gl.ScanAndCollectN(func(pg gl.PaginationOptionFunc) ([]*gl.RegistryRepository, *gl.Response, error) {
		opt := &gl.ListProjectRegistryRepositoriesOptions{ListOptions: gl.ListOptions{PerPage: registryPerPage}}
		return c.api.ContainerRegistry.ListProjectRegistryRepositories(p.ID, opt, gl.WithContext(ctx), pg)
	}, maxRepositories)
	if registryClosed(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("repositories of project %q (id %d): %w", p.PathWithNamespace, p.ID, err)
	}
	out := make([]RegistryRepository, 0, len(repos))
	for _, r := range repos {
		if r == nil {
			continue
		}
		tags, err := gl.ScanAndCollectN(func(pg gl.PaginationOptionFunc) ([]*gl.RegistryRepositoryTag, *gl.Response, error) {
			opt := &gl.ListRegistryRepositoryTagsOptions{ListOptions: gl.ListOptions{PerPage: registryPerPage}}
			return c.api.ContainerRegistry.ListRegistryRepositoryTags(p.ID, r.ID, opt, gl.WithContext(ctx), pg)
		}, maxTags)
		if registryClosed(err) {
			// The repository was deleted, or the registry closed, since it was listed.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tags of registry repository %q (id %d): %w", r.Path, r.ID, err)
		}
		repo := RegistryRepository{
			ID:        r.ID,
			ProjectID: cmp.Or(r.ProjectID, p.ID),
			Project:   p.PathWithNamespace,
			Path:      r.Path,
			Location:  r.Location,
			CreatedAt: r.CreatedAt,
			Tags:      make([]RegistryTag, 0, len(tags)),
		}
		for _, t := range tags {
			if t != nil {
				repo.Tags = append(repo.Tags, RegistryTag{Name: t.Name, Location: t.Location})
			}
		}
		slices.SortFunc(repo.Tags, func(a, b RegistryTag) int { return cmp.Compare(a.Name, b.Name) })
		out = append(out, repo)
	}
	return out, nil
}

// registryClosed reports whether err is GitLab refusing a project's registry: 403 when the
// registry is disabled or private to members, 404 when the project or repository is
// hidden or gone, or the instance has no registry.
func registryClosed(err error) bool {
	if errors.Is(err, gl.ErrNotFound) {
		return true
	}
	var er *gl.ErrorResponse
	return errors.As(err, &er) && er.HasStatusCode(http.StatusForbidden)
}

// lookUpUser finds the account named username, without regard to case; ErrNoSuchUser when
// GitLab has none.
func (c *Client) lookUpUser(ctx context.Context, username string) (*gl.User, error) {
	users, _, err := c.api.Users.ListUsers(&gl.ListUsersOptions{Username: gl.Ptr(username)}, gl.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("look up user: %w", err)
	}
	for _, u := range users {
		if u != nil && strings.EqualFold(u.Username, username) {
			return u, nil
		}
	}
	return nil, ErrNoSuchUser
}

// UserError words a failed registry listing in one line for the user who asked: no GitLab
// account, GitLab unreachable, or what GitLab said.
func UserError(err error) error {
	switch {
	case errors.Is(err, ErrNoSuchUser):
		return errors.New("GitLab has no user by your name, so there is no registry to show")
	case IsUnavailable(err):
		return errors.New("GitLab cannot be reached now; try again later")
	}
	return fmt.Errorf("could not list your registry: %w", err)
}
