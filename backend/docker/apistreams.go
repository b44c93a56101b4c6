package docker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// The Docker API's streams: logs, stats, attach, exec and the archive (docker cp). Each is
// resolved and authorised first (one of the caller's own containers, or an exec in one),
// then streamed to and from the engine for that engine ID only.

// APILogOptions select the logs of GET /containers/{id}/logs.
type APILogOptions struct {
	Stdout, Stderr, Follow, Timestamps, Details bool
	Since, Until, Tail                          string
}

var logTimeRE = regexp.MustCompile(`^[0-9A-Za-z.:+-]{0,40}$`)

// ContainerLogs streams the logs of one of the identity's own containers as the engine
// sends them (multiplexed unless the container has a terminal; tty says which).
func (a *API) ContainerLogs(ctx context.Context, id backend.Identity, ref string, opts APILogOptions) (r io.ReadCloser, tty bool, err error) {
	c, err := a.own(ctx, id, ref)
	if err != nil {
		a.svc.RecordRefusal(id, "logs", ref, err)
		return nil, false, err
	}
	for _, v := range []string{opts.Since, opts.Until, opts.Tail} {
		if !logTimeRE.MatchString(v) {
			return nil, false, errorf(ErrInvalid, "invalid value %s", shown(v))
		}
	}
	if !opts.Stdout && !opts.Stderr {
		return nil, false, errorf(ErrInvalid, "Bad parameters: you must choose at least one stream")
	}
	tty, err = a.hasTTY(ctx, c.ID, ref)
	if err != nil {
		return nil, false, err
	}
	body, err := a.svc.api.ContainerLogs(ctx, c.ID, client.ContainerLogsOptions{
		ShowStdout: opts.Stdout, ShowStderr: opts.Stderr, Since: opts.Since, Until: opts.Until,
		Timestamps: opts.Timestamps, Follow: opts.Follow, Tail: opts.Tail, Details: opts.Details,
	})
	if err != nil {
		return nil, false, apiErr("logs of container "+shown(ref), err)
	}
	return body, tty, nil
}

// hasTTY reports whether a container was made with a terminal.
func (a *API) hasTTY(ctx context.Context, engineID, ref string) (bool, error) {
	ins, err := a.svc.api.ContainerInspect(ctx, engineID, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return false, notFoundAPI(ref)
	}
	if err != nil {
		return false, apiErr("inspect container "+shown(ref), err)
	}
	return ins.Container.Config != nil && ins.Container.Config.Tty, nil
}

// ContainerStats streams (or, without stream, gives one of) the engine's statistics of one
// of the identity's own containers, each with the user's name for it.
func (a *API) ContainerStats(ctx context.Context, id backend.Identity, ref string, stream, oneShot bool) (io.ReadCloser, error) {
	c, err := a.own(ctx, id, ref)
	if err != nil {
		return nil, err
	}
	res, err := a.svc.api.ContainerStats(ctx, c.ID, client.ContainerStatsOptions{Stream: stream, IncludePreviousSample: !stream && !oneShot})
	if err != nil {
		return nil, apiErr("stats of container "+shown(ref), err)
	}
	name, _ := json.Marshal("/" + c.Labels[LabelName])
	pr, pw := io.Pipe()
	go func() {
		dec := json.NewDecoder(res.Body)
		enc := json.NewEncoder(pw)
		for {
			var m map[string]json.RawMessage
			if err := dec.Decode(&m); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				_ = pw.CloseWithError(err)
				return
			}
			m["name"] = name
			if err := enc.Encode(m); err != nil {
				_ = pw.CloseWithError(err)
				return
			}
		}
	}()
	return &pipeBody{PipeReader: pr, body: res.Body}, nil
}

// pipeBody is a rewritten stream whose Close also closes what it was read from.
type pipeBody struct {
	*io.PipeReader
	body io.Closer
}

func (p *pipeBody) Close() error {
	err := p.body.Close()
	_ = p.PipeReader.Close()
	return err
}

// APIStream is one hijacked stream to the engine (an attach or an exec) that the door
// joins to its client's connection. Reads come from the engine, writes go to it.
type APIStream struct {
	conn client.HijackedResponse
	// TTY is whether the stream is a terminal's (raw) rather than multiplexed.
	TTY  bool
	proc *process // an exec's process, ended on Close if still running

	once sync.Once
	err  error
}

func (st *APIStream) Read(p []byte) (int, error)  { return st.conn.Reader.Read(p) }
func (st *APIStream) Write(p []byte) (int, error) { return st.conn.Conn.Write(p) }

// CloseWrite tells the engine the client has no more input.
func (st *APIStream) CloseWrite() error { return st.conn.CloseWrite() }

// Close ends the stream. An exec's process that is still running then (its client went
// away) is ended as after a terminal hang-up, so nothing lingers in the container.
func (st *APIStream) Close() error {
	st.once.Do(func() {
		st.conn.Close()
		if st.proc == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
		defer cancel()
		st.err = st.proc.end(ctx)
	})
	return st.err
}

// APIAttachOptions are the query of POST /containers/{id}/attach.
type APIAttachOptions struct {
	Stream, Stdin, Stdout, Stderr, Logs bool
	DetachKeys                          string
}

var detachKeysRE = regexp.MustCompile(`^((ctrl-[a-z@^\[\\\]_])|[a-zA-Z0-9]){1}(,((ctrl-[a-z@^\[\\\]_])|[a-zA-Z0-9])){0,7}$`)

// AttachContainer joins the main process of one of the identity's own containers. Audited
// as "attach".
func (a *API) AttachContainer(ctx context.Context, id backend.Identity, ref string, opts APIAttachOptions) (*APIStream, error) {
	st, c, err := a.attach(ctx, id, ref, opts)
	a.svc.record(id, "attach", a.auditRef(id, c, ref), err)
	return st, err
}

func (a *API) attach(ctx context.Context, id backend.Identity, ref string, opts APIAttachOptions) (*APIStream, container.Summary, error) {
	c, err := a.own(ctx, id, ref)
	if err != nil {
		return nil, c, err
	}
	if opts.DetachKeys != "" && !detachKeysRE.MatchString(opts.DetachKeys) {
		return nil, c, errorf(ErrInvalid, "invalid detach keys %s", shown(opts.DetachKeys))
	}
	tty, err := a.hasTTY(ctx, c.ID, ref)
	if err != nil {
		return nil, c, err
	}
	att, err := a.svc.api.ContainerAttach(ctx, c.ID, client.ContainerAttachOptions{
		Stream: opts.Stream, Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr, Logs: opts.Logs, DetachKeys: opts.DetachKeys,
	})
	if err != nil {
		return nil, c, apiErr("attach to container "+shown(ref), err)
	}
	return &APIStream{conn: att.HijackedResponse, TTY: tty}, c, nil
}

// CreateExec is POST /containers/{id}/exec for one of the identity's own running
// containers: the request is checked (no privileged exec), and the process is marked so it
// can be ended if its client goes away. Audited as "exec".
func (a *API) CreateExec(ctx context.Context, id backend.Identity, ref string, body []byte) ([]byte, error) {
	out, c, err := a.createExec(ctx, id, ref, body)
	a.svc.record(id, "exec", a.auditRef(id, c, ref), err)
	return out, err
}

func (a *API) createExec(ctx context.Context, id backend.Identity, ref string, body []byte) ([]byte, container.Summary, error) {
	c, err := a.own(ctx, id, ref)
	if err != nil {
		return nil, c, err
	}
	var req container.ExecCreateRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, c, errorf(ErrInvalid, "the exec request is not valid JSON")
	}
	switch {
	case req.Privileged:
		return nil, c, refused("Privileged", "exec --privileged", "privileged processes are not allowed on this server")
	case len(req.Cmd) == 0:
		return nil, c, errorf(ErrInvalid, "No exec command specified")
	case req.DetachKeys != "" && !detachKeysRE.MatchString(req.DetachKeys):
		return nil, c, errorf(ErrInvalid, "invalid detach keys %s", shown(req.DetachKeys))
	case req.User != "" && (len(req.User) > 64 || strings.ContainsAny(req.User, "\x00\n ")):
		return nil, c, invalidField("User", "exec --user", "invalid user")
	case req.WorkingDir != "" && !path.IsAbs(req.WorkingDir):
		return nil, c, invalidField("WorkingDir", "exec --workdir", "must be an absolute path")
	}
	if err := validateCmd(req.Cmd); err != nil {
		return nil, c, err
	}
	env := slices.DeleteFunc(slices.Clone(req.Env), func(kv string) bool { return strings.HasPrefix(kv, execMarker+"=") })
	if err := ValidateEnv(env); err != nil {
		return nil, c, err
	}
	if c.State != container.StateRunning {
		return nil, c, errorf(ErrConflict, "container %s is not running", shown(ref))
	}
	token := rand.Text()
	env = append(env, execMarker+"="+token)
	opts := client.ExecCreateOptions{
		User: req.User, TTY: req.Tty, AttachStdin: req.AttachStdin, AttachStdout: req.AttachStdout,
		AttachStderr: req.AttachStderr, DetachKeys: req.DetachKeys, Env: env, WorkingDir: req.WorkingDir, Cmd: req.Cmd,
	}
	if req.ConsoleSize != nil {
		opts.ConsoleSize = client.ConsoleSize{Height: req.ConsoleSize[0], Width: req.ConsoleSize[1]}
	}
	created, err := a.svc.api.ExecCreate(ctx, c.ID, opts)
	switch {
	case cerrdefs.IsConflict(err):
		return nil, c, errorf(ErrConflict, "container %s is not running", shown(ref))
	case err != nil:
		return nil, c, apiErr("exec in container "+shown(ref), err)
	}
	a.execs.Store(created.ID, token)
	out, err := json.Marshal(struct {
		ID string `json:"Id"`
	}{created.ID})
	return out, c, err
}

// ownExec finds an exec the identity may use: one in their own container.
func (a *API) ownExec(ctx context.Context, id backend.Identity, execID string) (client.ExecInspectResult, error) {
	missing := errorf(ErrNotFound, "No such exec instance: %s", shown(execID))
	if err := checkIdentity(id); err != nil {
		return client.ExecInspectResult{}, err
	}
	if !hexRE.MatchString(execID) || len(execID) != 64 {
		return client.ExecInspectResult{}, missing
	}
	ins, err := a.svc.api.ExecInspect(ctx, execID, client.ExecInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return ins, missing
	}
	if err != nil {
		return ins, apiErr("look up exec", err)
	}
	mine, err := a.svc.ownContainers(ctx, id.User)
	if err != nil {
		return ins, err
	}
	if !slices.ContainsFunc(mine, func(c container.Summary) bool { return c.ID == ins.ContainerID }) {
		return client.ExecInspectResult{}, missing
	}
	return ins, nil
}

// StartExec is POST /exec/{id}/start: detached, it starts the process and returns no
// stream; otherwise the returned stream is the process's, ended (hang-up, then kill) when
// the stream is closed while it still runs.
func (a *API) StartExec(ctx context.Context, id backend.Identity, execID string, body []byte) (*APIStream, error) {
	ins, err := a.ownExec(ctx, id, execID)
	if err != nil {
		return nil, err
	}
	var req container.ExecStartRequest
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, errorf(ErrInvalid, "the exec start request is not valid JSON")
		}
	}
	var size client.ConsoleSize
	if req.ConsoleSize != nil {
		size = client.ConsoleSize{Height: req.ConsoleSize[0], Width: req.ConsoleSize[1]}
	}
	ae, err := a.engineAPI()
	if err != nil {
		return nil, err
	}
	if req.Detach {
		_, err := ae.ExecStart(ctx, execID, client.ExecStartOptions{Detach: true, TTY: req.Tty, ConsoleSize: size})
		return nil, apiErr("start exec", err)
	}
	att, err := a.svc.api.ExecAttach(ctx, execID, client.ExecAttachOptions{TTY: req.Tty, ConsoleSize: size})
	if err != nil {
		return nil, apiErr("start exec", err)
	}
	token, _ := a.execs.LoadAndDelete(execID)
	tok, _ := token.(string)
	proc := &process{api: a.svc.api, what: "exec in " + id.User + "/" + shortID(ins.ContainerID), containerID: ins.ContainerID, execID: execID, token: tok}
	return &APIStream{conn: att.HijackedResponse, TTY: req.Tty, proc: proc}, nil
}

// ResizeExec sets the terminal size of an exec in one of the identity's containers.
func (a *API) ResizeExec(ctx context.Context, id backend.Identity, execID string, width, height int) error {
	if _, err := a.ownExec(ctx, id, execID); err != nil {
		return err
	}
	if err := validateSize(width, height); err != nil {
		return err
	}
	_, err := a.svc.api.ExecResize(ctx, execID, client.ExecResizeOptions{Width: uint(width), Height: uint(height)})
	return apiErr("resize exec", err)
}

// InspectExec is GET /exec/{id}/json for an exec in one of the identity's containers.
func (a *API) InspectExec(ctx context.Context, id backend.Identity, execID string) ([]byte, error) {
	ins, err := a.ownExec(ctx, id, execID)
	if err != nil {
		return nil, err
	}
	var code *int
	if !ins.Running {
		code = &ins.ExitCode
	}
	return json.Marshal(map[string]any{
		"ID": ins.ID, "ContainerID": ins.ContainerID, "Running": ins.Running, "ExitCode": code, "Pid": ins.PID,
		"CanRemove": false, "OpenStdin": false, "OpenStdout": true, "OpenStderr": true,
	})
}

// checkArchivePath checks a path in a container as docker cp sends it.
func checkArchivePath(p string) error {
	if p == "" || len(p) > 4096 || strings.ContainsRune(p, 0) {
		return errorf(ErrInvalid, "invalid path %s", shown(p))
	}
	return nil
}

// archiveErr words the engine's answer about a path without its engine names.
func archiveErr(ref, p string, err error) error {
	if cerrdefs.IsNotFound(err) {
		return errorf(ErrNotFound, "Could not find the file %s in container %s", shown(p), shown(ref))
	}
	return apiErr("copy in container "+shown(ref), err)
}

// statHeader is the X-Docker-Container-Path-Stat header of a path stat.
func statHeader(st container.PathStat) string {
	js, _ := json.Marshal(st)
	return base64.StdEncoding.EncodeToString(js)
}

// StatPath is HEAD /containers/{id}/archive: the path's stat, as the header's value.
func (a *API) StatPath(ctx context.Context, id backend.Identity, ref, p string) (string, error) {
	c, err := a.own(ctx, id, ref)
	if err != nil {
		return "", err
	}
	if err := checkArchivePath(p); err != nil {
		return "", err
	}
	res, err := a.svc.api.ContainerStatPath(ctx, c.ID, client.ContainerStatPathOptions{Path: p})
	if err != nil {
		return "", archiveErr(ref, p, err)
	}
	return statHeader(res.Stat), nil
}

// GetArchive is GET /containers/{id}/archive: a tar of the path, and its stat header.
// Audited as "cp" (out of the container).
func (a *API) GetArchive(ctx context.Context, id backend.Identity, ref, p string) (io.ReadCloser, string, error) {
	c, err := a.own(ctx, id, ref)
	if err != nil {
		a.svc.record(id, "cp", shown(ref)+":"+shown(p), err)
		return nil, "", err
	}
	if err := checkArchivePath(p); err != nil {
		return nil, "", err
	}
	res, err := a.svc.api.CopyFromContainer(ctx, c.ID, client.CopyFromContainerOptions{SourcePath: p})
	if err != nil {
		return nil, "", archiveErr(ref, p, err)
	}
	return res.Content, statHeader(res.Stat), nil
}

// PutArchive is PUT /containers/{id}/archive: the tar r is unpacked at the path in one
// of the identity's own containers (by the engine, inside the container). Audited as "cp".
func (a *API) PutArchive(ctx context.Context, id backend.Identity, ref, p string, noOverwriteDirNonDir, copyUIDGID bool, r io.Reader) error {
	c, err := a.own(ctx, id, ref)
	if err == nil {
		err = checkArchivePath(p)
	}
	if err == nil {
		_, err = a.svc.api.CopyToContainer(ctx, c.ID, client.CopyToContainerOptions{
			DestinationPath: p, Content: r, AllowOverwriteDirWithFile: !noOverwriteDirNonDir, CopyUIDGID: copyUIDGID,
		})
		if err != nil {
			err = archiveErr(ref, p, err)
		}
	}
	a.svc.record(id, "cp", a.auditRef(id, c, ref)+":"+shown(p), err)
	return err
}
