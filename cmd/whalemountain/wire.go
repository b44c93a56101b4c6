package main

import (
	"fmt"
	"log/slog"

	"whalemountain/backend/gitlab"
	"whalemountain/sshauth"
)

// newAuthenticator builds the key sources (keys directory first, then GitLab when configured)
// and the role rules. The description says where keys come from, for the start-up lines.
func newAuthenticator(cfg Config, keysDir string, logger *slog.Logger) (*sshauth.Authenticator, string, error) {
	sources := []sshauth.KeySource{sshauth.NewDirSource(keysDir, logger)}
	desc := "the keys directory " + keysDir
	var gl *gitlab.Client
	if g := cfg.GitLab; g.URL != "" {
		var err error
		gl, err = gitlab.New(g.URL, g.token, gitlab.WithTimeout(g.RequestTimeout))
		if err != nil {
			return nil, "", fmt.Errorf("config: gitlab.url: %w", err)
		}
		sources = append(sources, sshauth.NewGitLabSource(gl, sshauth.GitLabOptions{
			TTL: g.CacheTTL, StaleFor: g.StaleFor, Logger: logger,
		}))
		desc += " and GitLab " + g.URL
	}
	roles := sshauth.NewRoleResolver(sshauth.RoleConfig{
		TAs:            cfg.TAs,
		GitLabGroup:    cfg.GitLab.TAGroup,
		MinAccessLevel: cfg.GitLab.TAMinAccess,
		TTL:            cfg.GitLab.CacheTTL,
		Logger:         logger,
	}, gl)
	auth, err := sshauth.New(sshauth.Options{
		Sources:      sources,
		Roles:        roles,
		FailureLimit: cfg.Limits.FailuresPerMinute,
		Logger:       logger,
	})
	if err != nil {
		return nil, "", err
	}
	return auth, desc, nil
}
