// Command standin is a stand-in for gitlab-runner, for tests where the real one cannot be
// built or pulled. It does what the real runner does with the config.toml WhaleMountain
// writes: reads /etc/gitlab-runner/config.toml, checks its token (POST
// /api/v4/runners/verify), polls for jobs (POST /api/v4/jobs/request: 201 a job, 204
// none), and runs each job with the docker executor's own Docker API calls against the
// configured host — Info, ImageInspect (ImagePull when missing), VolumeCreate for the
// builds directory, ContainerCreate (with config.toml's volumes as binds and its
// environment as variables, as the real one), ContainerAttach, ContainerStart, the script on stdin,
// ContainerWait, ContainerInspect, ContainerRemove, VolumeRemove — sending the output as
// the job's trace (PATCH /api/v4/jobs/:id/trace) and its end (PUT /api/v4/jobs/:id). It
// never prints the token.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// config is what the stand-in reads of config.toml.
type config struct {
	concurrent    int
	checkInterval time.Duration
	url, token    string
	host, image   string
	privileged    bool
	networkMode   string
	volumes       []string // [runners.docker] volumes: binds of every job container
	environment   []string // [[runners]] environment: variables of every job
}

// stringArray reads a TOML array of basic strings on one line: ["a", "b"].
func stringArray(v string) []string {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "[") || !strings.HasSuffix(v, "]") {
		return nil
	}
	var out []string
	for part := range strings.SplitSeq(v[1:len(v)-1], ",") {
		if s, err := strconv.Unquote(strings.TrimSpace(part)); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// readConfig reads the keys of the TOML WhaleMountain writes: key = "string" | number | bool.
func readConfig(path string) (config, error) {
	f, err := os.Open(path)
	if err != nil {
		return config{}, err
	}
	defer f.Close()
	c := config{concurrent: 1, checkInterval: 3 * time.Second}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		str := v
		if s, err := strconv.Unquote(v); err == nil {
			str = s
		}
		switch k {
		case "concurrent":
			c.concurrent, _ = strconv.Atoi(v)
		case "check_interval":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				c.checkInterval = time.Duration(n) * time.Second
			}
		case "url":
			c.url = strings.TrimRight(str, "/")
		case "token":
			c.token = str
		case "host":
			c.host = str
		case "image":
			c.image = str
		case "privileged":
			c.privileged = v == "true"
		case "network_mode":
			c.networkMode = str
		case "volumes":
			c.volumes = stringArray(v)
		case "environment":
			c.environment = stringArray(v)
		}
	}
	if c.url == "" || c.token == "" || c.host == "" {
		return c, errors.New("config.toml needs url, token and [runners.docker] host")
	}
	return c, sc.Err()
}

type runner struct {
	cfg  config
	http *http.Client
	sem  chan struct{}
	wg   sync.WaitGroup
}

func (r *runner) post(method, path string, body any, hdr map[string]string, raw []byte) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, r.cfg.url+"/api/v4"+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp, b, nil
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("")
	path := "/etc/gitlab-runner/config.toml"
	if len(os.Args) > 2 && os.Args[1] == "--config" {
		path = os.Args[2]
	}
	cfg, err := readConfig(path)
	if err != nil {
		log.Fatalf("ERROR: loading config %s: %v", path, err)
	}
	log.Printf("Starting multi-runner from %s... builds=0 max_builds=%d", path, cfg.concurrent)
	r := &runner{cfg: cfg, http: &http.Client{Timeout: 30 * time.Second}, sem: make(chan struct{}, max(cfg.concurrent, 1))}
	for {
		resp, _, err := r.post(http.MethodPost, "/runners/verify", map[string]any{"token": cfg.token, "system_id": "s_standin"}, nil, nil)
		if err == nil && resp.StatusCode == http.StatusOK {
			log.Printf("Verifying runner... is valid")
			break
		}
		if err == nil {
			log.Printf("ERROR: Verifying runner... is not valid (status %d)", resp.StatusCode)
		} else {
			log.Printf("ERROR: Verifying runner... GitLab unreachable: %v", err)
		}
		time.Sleep(cfg.checkInterval)
	}
	for {
		r.sem <- struct{}{}
		job, ok := r.request()
		if !ok {
			<-r.sem
			time.Sleep(cfg.checkInterval)
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() { <-r.sem }()
			r.run(job)
		}()
	}
}

// jobResponse is the part of POST /jobs/request's answer the stand-in uses.
type jobResponse struct {
	ID        int64  `json:"id"`
	Token     string `json:"token"`
	Variables []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"variables"`
	Steps []struct {
		Name   string   `json:"name"`
		Script []string `json:"script"`
	} `json:"steps"`
	Image struct {
		Name string `json:"name"`
	} `json:"image"`
	JobInfo struct {
		ProjectID int64 `json:"project_id"`
	} `json:"job_info"`
}

func (r *runner) request() (jobResponse, bool) {
	info := map[string]any{"name": "gitlab-runner", "version": "17.11.0-standin", "executor": "docker", "shell": "sh",
		"features": map[string]any{"variables": true, "image": true, "services": false, "trace_checksum": false}}
	resp, body, err := r.post(http.MethodPost, "/jobs/request", map[string]any{"token": r.cfg.token, "info": info, "system_id": "s_standin"}, nil, nil)
	switch {
	case err != nil:
		log.Printf("WARNING: Checking for jobs... failed: %v", err)
		return jobResponse{}, false
	case resp.StatusCode == http.StatusNoContent:
		return jobResponse{}, false
	case resp.StatusCode != http.StatusCreated:
		log.Printf("WARNING: Checking for jobs... forbidden (status %d)", resp.StatusCode)
		return jobResponse{}, false
	}
	var j jobResponse
	if err := json.Unmarshal(body, &j); err != nil {
		log.Printf("WARNING: Checking for jobs... bad answer: %v", err)
		return jobResponse{}, false
	}
	log.Printf("Checking for jobs... received job=%d", j.ID)
	return j, true
}

// trace sends what the job printed, from where GitLab has it.
type trace struct {
	r    *runner
	job  jobResponse
	mu   sync.Mutex
	sent int
	buf  []byte
}

func (t *trace) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.buf = append(t.buf, p...)
	t.mu.Unlock()
	return len(p), nil
}

func (t *trace) flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) <= t.sent {
		return
	}
	chunk := t.buf[t.sent:]
	hdr := map[string]string{"JOB-TOKEN": t.job.Token, "Content-Type": "text/plain",
		"Content-Range": fmt.Sprintf("%d-%d", t.sent, t.sent+len(chunk)-1)}
	resp, _, err := t.r.post(http.MethodPatch, fmt.Sprintf("/jobs/%d/trace", t.job.ID), nil, hdr, chunk)
	if err == nil && resp.StatusCode == http.StatusAccepted {
		t.sent += len(chunk)
	}
}

func (r *runner) run(job jobResponse) {
	tr := &trace{r: r, job: job}
	fmt.Fprintf(tr, "Running with gitlab-runner 17.11.0-standin\nUsing Docker executor with image %s ...\n", job.Image.Name)
	code, err := r.execute(job, tr)
	state, reason := "success", ""
	switch {
	case err != nil:
		fmt.Fprintf(tr, "ERROR: Job failed (system failure): %v\n", err)
		state, reason = "failed", "runner_system_failure"
	case code != 0:
		fmt.Fprintf(tr, "ERROR: Job failed: exit code %d\n", code)
		state, reason = "failed", "script_failure"
	default:
		fmt.Fprintf(tr, "Job succeeded\n")
	}
	tr.flush()
	body := map[string]any{"token": job.Token, "state": state, "exit_code": code}
	if reason != "" {
		body["failure_reason"] = reason
	}
	if _, _, err := r.post(http.MethodPut, fmt.Sprintf("/jobs/%d", job.ID), body, nil, nil); err != nil {
		log.Printf("WARNING: Updating job %d failed: %v", job.ID, err)
	}
	log.Printf("Job %s: job=%d", state, job.ID)
}

// execute runs the job's script in a container made through the configured Docker host,
// with the docker executor's calls.
func (r *runner) execute(job jobResponse, out io.Writer) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	cli, err := client.New(client.WithHost(r.cfg.host))
	if err != nil {
		return 0, fmt.Errorf("docker client: %w", err)
	}
	defer cli.Close()
	if _, err := cli.Info(ctx, client.InfoOptions{}); err != nil {
		return 0, fmt.Errorf("docker info: %w", err)
	}
	image := job.Image.Name
	if image == "" {
		image = r.cfg.image
	}
	if _, err := cli.ImageInspect(ctx, image); err != nil {
		fmt.Fprintf(out, "Pulling docker image %s ...\n", image)
		rc, err := cli.ImagePull(ctx, image, client.ImagePullOptions{})
		if err != nil {
			return 0, fmt.Errorf("pull %s: %w", image, err)
		}
		_, _ = io.Copy(io.Discard, rc)
		rc.Close()
	}
	// Names as the real runner makes them: its short token (9 characters after "glrt-"),
	// the project, the concurrency slot, a hash of the job's settings.
	short := strings.TrimPrefix(r.cfg.token, "glrt-")
	short = short[:min(len(short), 9)]
	base := fmt.Sprintf("runner-%s-project-%d-concurrent-0", short, job.JobInfo.ProjectID)
	vol, err := cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: fmt.Sprintf("%s-builds-%d", base, job.ID),
		Labels: map[string]string{"com.gitlab.gitlab-runner.type": "cache"}})
	if err != nil {
		return 0, fmt.Errorf("create the builds volume: %w", err)
	}
	defer func() {
		_, _ = cli.VolumeRemove(context.WithoutCancel(ctx), vol.Volume.Name, client.VolumeRemoveOptions{Force: true})
	}()
	env := slices.Clone(r.cfg.environment)
	for _, v := range job.Variables {
		env = append(env, v.Key+"="+v.Value)
	}
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: fmt.Sprintf("%s-%016x-build", base, job.ID),
		Config: &container.Config{
			Image: image, Cmd: []string{"sh"}, Env: env, WorkingDir: "/builds",
			AttachStdin: true, AttachStdout: true, AttachStderr: true, OpenStdin: true, StdinOnce: true,
			Labels: map[string]string{"com.gitlab.gitlab-runner.job.id": strconv.FormatInt(job.ID, 10),
				"com.gitlab.gitlab-runner.type": "build"},
		},
		HostConfig: &container.HostConfig{
			Privileged:  r.cfg.privileged,
			Binds:       append([]string{vol.Volume.Name + ":/builds"}, r.cfg.volumes...),
			NetworkMode: container.NetworkMode(r.cfg.networkMode),
			LogConfig:   container.LogConfig{Type: "json-file"},
		},
	})
	if err != nil {
		return 0, fmt.Errorf("create the build container: %w", err)
	}
	defer func() {
		_, _ = cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	}()
	att, err := cli.ContainerAttach(ctx, created.ID, client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return 0, fmt.Errorf("attach to the build container: %w", err)
	}
	defer att.Close()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = stdcopy.StdCopy(out, out, att.Reader)
	}()
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return 0, fmt.Errorf("start the build container: %w", err)
	}
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, st := range job.Steps {
		for _, line := range st.Script {
			// The line as typed, as the runner shows it: nothing in it is expanded.
			fmt.Fprintf(&script, "printf '%%s\\n' '%s'\n%s\n", strings.ReplaceAll("$ "+line, "'", `'\''`), line)
		}
	}
	if _, err := io.WriteString(att.Conn, script.String()); err != nil {
		return 0, fmt.Errorf("send the script: %w", err)
	}
	_ = att.CloseWrite()
	wait := cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	var code int64
	select {
	case res := <-wait.Result:
		code = res.StatusCode
	case err := <-wait.Error:
		return 0, fmt.Errorf("wait for the build container: %w", err)
	}
	<-copied
	ins, err := cli.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err == nil && ins.Container.State != nil {
		code = int64(ins.Container.State.ExitCode)
	}
	return int(code), nil
}
