package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"whalemountain/tui/termsafe"
)

type whoami struct {
	User           string `json:"user"`
	Role           string `json:"role"`
	KeyFingerprint string `json:"key_fingerprint"`
	KeySource      string `json:"key_source"`
}

func whoamiCmd(env Env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "whoami [--json]",
		Short: "Show who this server thinks you are",
		Args:  exactArgs(env, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			id := env.Identity
			w := whoami{User: id.User, Role: string(id.Role), KeyFingerprint: id.KeyFingerprint, KeySource: id.KeySource}
			if asJSON {
				return writeJSON(env, w)
			}
			fmt.Fprintf(env.Stdout, "user:   %s\nrole:   %s\nkey:    %s\nsource: %s\n",
				termsafe.Line(w.User), termsafe.Line(w.Role), termsafe.Line(w.KeyFingerprint), termsafe.Line(w.KeySource))
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func versionCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the server's version",
		Args:  exactArgs(env, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprintf(env.Stdout, "whalemountain %s\n", env.Version)
			return nil
		},
	}
}

// writeJSON writes v as indented JSON with a trailing newline.
func writeJSON(env Env, v any) error {
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}
