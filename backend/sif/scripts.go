package sif

import (
	"fmt"
	"strings"
)

// The scripts an image carries in /.singularity.d, as Apptainer's own images from Docker
// sources do (written here in our words, with the same effect):
//
//	env/01-base.sh                 nothing to set (kept for runtimes that expect it)
//	env/10-docker2singularity.sh   the image's Env (see EnvQuote for its quoting)
//	env/90-environment.sh          room for a definition's %environment (empty)
//	env/94-appsbase.sh             SCIF apps' globals (none)
//	env/95-apps.sh                 the SCIF app named by SINGULARITY_APPNAME, if any
//	env/99-base.sh                 LD_LIBRARY_PATH gets /.singularity.d/libs, PS1 a default
//	env/99-runtimevars.sh          --env PATH / APPTAINERENV_PREPEND_PATH and the like
//	actions/{exec,run,shell,start,test}  read env/*.sh in order, then act
//	runscript                      the image's Entrypoint and Cmd
//
// Apptainer (1.x) runs its own copy of the action scripts in an interpreter built into
// it: it reads env/*.sh in order, and right after 99-base.sh applies the caller's --env
// and APPTAINERENV_* values. An image without 99-base.sh never gets them, nor the
// --nv driver libraries on LD_LIBRARY_PATH. The runscript does not read env/*.sh
// again: the action that runs it already did, and doing it twice would undo --env.

// envScripts are the scripts of /.singularity.d/env that do not depend on the image.
var envScripts = map[string]string{
	"01-base.sh": "#!/bin/sh\n# Base environment of the container: nothing to set here.\n",
	"90-environment.sh": "#!/bin/sh\n# The image's own environment is in 10-docker2singularity.sh; shell code\n" +
		"# added for this container follows.\n",
	"94-appsbase.sh": "#!/bin/sh\n# Globals of the SCIF apps of this container: it has none.\n",
	"95-apps.sh":     appsScript,
	"99-base.sh":     baseScript,
	"99-runtimevars.sh": `#!/bin/sh
# PATH as the caller asked at run time (--env PATH=..., APPTAINERENV_PREPEND_PATH,
# APPTAINERENV_APPEND_PATH), applied after the image's own PATH.
if [ -n "${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then
    PATH="${SING_USER_DEFINED_PREPEND_PATH}:${PATH}"
fi
if [ -n "${SING_USER_DEFINED_APPEND_PATH:-}" ]; then
    PATH="${PATH}:${SING_USER_DEFINED_APPEND_PATH}"
fi
if [ -n "${SING_USER_DEFINED_PATH:-}" ]; then
    PATH="${SING_USER_DEFINED_PATH}"
fi
unset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH SING_USER_DEFINED_PATH
export PATH
`,
}

// baseScript is env/99-base.sh: the directory where --nv and --rocm put the host's GPU
// driver libraries goes last on the library path.
const baseScript = `#!/bin/sh
# Host libraries bound in at run time (--nv, --rocm) live in /.singularity.d/libs.
if [ -n "${LD_LIBRARY_PATH:-}" ]; then
    LD_LIBRARY_PATH="${LD_LIBRARY_PATH}:/.singularity.d/libs"
else
    LD_LIBRARY_PATH="/.singularity.d/libs"
fi
if [ -z "${PS1:-}" ]; then
    PS1="Apptainer> "
fi
export LD_LIBRARY_PATH PS1
`

// appsScript is env/95-apps.sh: nothing happens unless the caller names a SCIF app
// (--app NAME); an image from Docker has none, so naming one is an error.
const appsScript = `#!/bin/sh
# The SCIF app named with --app, if any.
if [ -n "${SINGULARITY_APPNAME:-}" ]; then
    export SINGULARITY_APPNAME
    __scif_app="/scif/apps/${SINGULARITY_APPNAME}"
    if [ ! -d "$__scif_app/" ]; then
        echo "Could not locate the container application: ${SINGULARITY_APPNAME}"
        exit 1
    fi
    SCIF_APPS="/scif/apps"
    SCIF_APPROOT="$__scif_app"
    export SCIF_APPS SCIF_APPROOT
    PATH="$__scif_app:/scif/apps/singularity:$PATH"
    if [ -d "$__scif_app/bin" ]; then
        PATH="$__scif_app/bin:$PATH"
    elif [ -d /scif/apps/singularity/bin ]; then
        PATH="/scif/apps/singularity/bin:$PATH"
    fi
    if [ -d "$__scif_app/lib" ]; then
        LD_LIBRARY_PATH="$__scif_app/lib:${LD_LIBRARY_PATH:-}"
        export LD_LIBRARY_PATH
    elif [ -d /scif/apps/singularity/lib ]; then
        LD_LIBRARY_PATH="/scif/apps/singularity/lib:${LD_LIBRARY_PATH:-}"
        export LD_LIBRARY_PATH
    fi
    for __scif_env in 01-base.sh 90-environment.sh; do
        if [ -f "$__scif_app/scif/env/$__scif_env" ]; then
            . "$__scif_app/scif/env/$__scif_env"
        elif [ -f "/scif/apps/singularity/scif/env/$__scif_env" ]; then
            . "/scif/apps/singularity/scif/env/$__scif_env"
        fi
    done
    unset __scif_app __scif_env
    export PATH
fi
`

// ShellQuote quotes s for a POSIX shell (dash, busybox sh, bash) and for Apptainer's
// built-in interpreter alike: single quotes, and a single quote as '"'"' (that
// interpreter keeps the backslash when a single quote is written as quote, backslash,
// quote, quote).
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

func quoteAll(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = ShellQuote(a)
	}
	return strings.Join(q, " ")
}

// EnvQuote quotes an environment value for the env scripts: always single quotes, a
// single quote as '"'"'. Apptainer's built-in interpreter (mvdan.cc/sh v3.10 in
// Apptainer 1.4) reads this back unchanged, as dash, busybox sh and bash do. It does not
// so read the double-quoted form Apptainer itself writes (export K="${K:-"value"}" with
// \ " ` $ escaped by a backslash) for values holding \\, \", \$ or \`, nor a single
// quote written as quote, backslash, quote, quote.
func EnvQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// EnvScript builds /.singularity.d/env/10-docker2singularity.sh from env ("KEY=value"
// entries, the image's Env) with the effect of Apptainer's: PATH is set; every other
// variable gets the image's value unless it already has a non-empty one (Apptainer
// clears the caller's environment before the env scripts and applies --env after
// them); entries with invalid names are skipped.
func EnvScript(env []string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, kv := range env {
		k, v, hasValue := strings.Cut(kv, "=")
		switch {
		case !validName(k):
			continue
		case !hasValue:
			fmt.Fprintf(&b, "export %s=\"${%s:-}\"\n", k, k)
		case k == "PATH":
			fmt.Fprintf(&b, "export %s=%s\n", k, EnvQuote(v))
		default:
			fmt.Fprintf(&b, "[ -n \"${%s:-}\" ] || %s=%s; export %s\n", k, k, EnvQuote(v), k)
		}
	}
	return b.String()
}

func validName(k string) bool {
	if k == "" || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Runscript builds /.singularity.d/runscript with OCI semantics: arguments replace Cmd,
// Entrypoint is always the prefix; /bin/sh when both are empty. Arguments are passed as
// they are, never evaluated by a shell (as `docker run`, and Apptainer with
// APPTAINER_NO_EVAL). workDir, when set, is where the image's own command runs (its
// Entrypoint, or its Cmd when no arguments replace it), as with `docker run`; a command
// given in full as arguments runs in the caller's directory, as with Apptainer's own SIF.
func Runscript(entrypoint, cmd []string, workDir string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	cd := ""
	if workDir != "" {
		cd = "cd " + ShellQuote(workDir) + " || echo \"runscript: staying in $PWD\" >&2\n"
	}
	switch {
	case len(entrypoint) > 0:
		b.WriteString(cd)
		fmt.Fprintf(&b, "if [ $# -gt 0 ]; then\n  exec %s \"$@\"\nfi\n", quoteAll(entrypoint))
		if len(cmd) > 0 {
			fmt.Fprintf(&b, "exec %s %s\n", quoteAll(entrypoint), quoteAll(cmd))
		} else {
			fmt.Fprintf(&b, "exec %s\n", quoteAll(entrypoint))
		}
	default:
		b.WriteString("if [ $# -gt 0 ]; then\n  exec \"$@\"\nfi\n")
		b.WriteString(cd)
		if len(cmd) > 0 {
			fmt.Fprintf(&b, "exec %s\n", quoteAll(cmd))
		} else {
			b.WriteString("exec /bin/sh\n")
		}
	}
	return b.String()
}

// startScript is /.singularity.d/startscript: an instance of an image from Docker starts
// nothing of its own.
const startScript = "#!/bin/sh\n# Run when an instance starts: nothing for this container.\n"

// actionNames are the action scripts an image carries for runtimes that run them from the
// image (older Singularity releases); Apptainer brings its own with the same steps.
var actionNames = []string{"exec", "run", "shell", "start", "test"}

// sourceEnv reads the image's environment scripts in order, as every action does first.
const sourceEnv = `for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then
        . "$script"
    fi
done
`

// ActionScript is /.singularity.d/actions/<action>: read the image's environment, then do
// what the action means.
func ActionScript(action string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	if action == "start" {
		// The runtime's process 1 waits for this signal before the instance goes on.
		b.WriteString("kill -CONT 1\n")
	}
	b.WriteString(sourceEnv)
	switch action {
	case "exec":
		b.WriteString("exec \"$@\"\n")
	case "run":
		b.WriteString(`if [ -n "${SINGULARITY_APPNAME:-}" ]; then
    for f in "/scif/apps/${SINGULARITY_APPNAME}/scif/runscript" /scif/apps/singularity/scif/runscript; do
        if [ -x "$f" ]; then exec "$f" "$@"; fi
    done
    echo "No runscript for the container application: ${SINGULARITY_APPNAME}" >&2
    exit 1
fi
if [ -x /.singularity.d/runscript ]; then
    exec /.singularity.d/runscript "$@"
fi
echo "No runscript in this container: running /bin/sh" >&2
exec /bin/sh "$@"
`)
	case "shell":
		b.WriteString(`if [ -n "${SINGULARITY_SHELL:-}" ] && [ -x "${SINGULARITY_SHELL}" ]; then
    exec "${SINGULARITY_SHELL}" "$@"
fi
if [ -x /bin/bash ]; then
    SHELL=/bin/bash
    PS1="Apptainer ${APPTAINER_NAME:-}:\\w> "
    export SHELL PS1
    exec /bin/bash --norc "$@"
fi
if [ -x /bin/sh ]; then
    SHELL=/bin/sh
    export SHELL
    exec /bin/sh "$@"
fi
echo "No /bin/sh in this container" >&2
exit 1
`)
	case "start":
		b.WriteString(`if [ -x /.singularity.d/startscript ]; then
    exec /.singularity.d/startscript "$@"
fi
`)
	case "test":
		b.WriteString(`if [ -n "${SINGULARITY_APPNAME:-}" ]; then
    for f in "/scif/apps/${SINGULARITY_APPNAME}/scif/test" /scif/apps/singularity/scif/test; do
        if [ -x "$f" ]; then exec "$f" "$@"; fi
    done
    echo "No test for the container application: ${SINGULARITY_APPNAME}" >&2
    exit 1
fi
if [ -x /.singularity.d/test ]; then
    exec /.singularity.d/test "$@"
fi
echo "No test script in this container" >&2
exec /bin/sh -c true
`)
	}
	return b.String()
}
