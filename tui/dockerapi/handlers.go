package dockerapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"whalemountain/backend/docker"
	"whalemountain/tui/termsafe"
)

// maxJSONBody bounds the JSON body of a request (a create, an exec, a volume).
const maxJSONBody = 1 << 20

// writeError answers with the Docker API's error form: a status and {"message": ...}.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": termsafe.Line(msg)})
}

// statusOf is the HTTP status for an error of the backend.
func statusOf(err error) int {
	switch {
	case errors.Is(err, docker.ErrNotModified):
		return http.StatusNotModified
	case errors.Is(err, docker.ErrNotFound), errors.Is(err, docker.ErrNoImage):
		return http.StatusNotFound
	case errors.Is(err, docker.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, docker.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, docker.ErrPermission), errors.Is(err, docker.ErrQuota), errors.Is(err, docker.ErrUnsupported):
		return http.StatusForbidden
	case errors.Is(err, docker.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// fail answers with err.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status == http.StatusNotModified {
		w.WriteHeader(status)
		return
	}
	if status == http.StatusInternalServerError && r.Context().Err() == nil {
		h.log.Warn("docker api: request failed", "user", h.id.User, "request", r.Method+" "+shortPath(r.URL.Path), "err", err)
	}
	writeError(w, status, err.Error())
}

// writeJSON answers 200 with a JSON body the backend made.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_, _ = w.Write([]byte("\n"))
}

// boolParam reads a boolean query parameter as the engine does.
func boolParam(q url.Values, k string) bool {
	switch strings.ToLower(q.Get(k)) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

// readBody reads a JSON request body, bounded.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxJSONBody {
		return nil, errors.New("the request body is too large")
	}
	return b, nil
}

// parseFilters reads the filters parameter: {"key": {"value": true}} or {"key": ["value"]}.
func parseFilters(s string) (map[string][]string, error) {
	out := map[string][]string{}
	if s == "" {
		return out, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, errors.New("invalid filters")
	}
	for k, v := range raw {
		var set map[string]bool
		if json.Unmarshal(v, &set) == nil {
			for val, on := range set {
				if on {
					out[k] = append(out[k], val)
				}
			}
			continue
		}
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			return nil, errors.New("invalid filters")
		}
		out[k] = append(out[k], list...)
	}
	return out, nil
}

// flusher writes through to the client at once, for streams.
type flusher struct {
	w http.ResponseWriter
	f http.Flusher
}

func newFlusher(w http.ResponseWriter) flusher {
	f, _ := w.(http.Flusher)
	return flusher{w: w, f: f}
}

func (fw flusher) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if fw.f != nil {
		fw.f.Flush()
	}
	return n, err
}

func (fw flusher) flush() {
	if fw.f != nil {
		fw.f.Flush()
	}
}

// messageStream answers a stream of JSON messages (pull, push, build) that starts when
// the first message comes: an error before it is an HTTP error, one after it the engine's
// error message in the stream.
type messageStream struct {
	mu      sync.Mutex // progress may come from another goroutine
	closed  bool
	h       *handler
	w       http.ResponseWriter
	r       *http.Request
	fw      flusher
	started bool
}

func (ms *messageStream) emit(js []byte) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.closed {
		return
	}
	if !ms.started {
		ms.started = true
		ms.w.Header().Set("Content-Type", "application/json")
		ms.w.WriteHeader(http.StatusOK)
	}
	_, _ = ms.fw.Write(append(js, '\n'))
}

func (ms *messageStream) end(err error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.closed = true
	switch {
	case err == nil && !ms.started:
		ms.w.Header().Set("Content-Type", "application/json")
		ms.w.WriteHeader(http.StatusOK)
	case err == nil:
	case !ms.started:
		ms.h.fail(ms.w, ms.r, err)
	default:
		msg := termsafe.Line(err.Error())
		js, _ := json.Marshal(map[string]any{"errorDetail": map[string]string{"message": msg}, "error": msg})
		_, _ = ms.fw.Write(append(js, '\n'))
	}
}

// --- system ---

func (h *handler) ping(w http.ResponseWriter, r *http.Request, _ []string) {
	av, err := h.b.Version(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	hd := w.Header()
	hd.Set("Api-Version", av.Version)
	hd.Set("Ostype", av.OSType)
	hd.Set("Docker-Experimental", "false")
	hd.Set("Builder-Version", "1")
	hd.Set("Swarm", "inactive")
	hd.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	hd.Set("Pragma", "no-cache")
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = io.WriteString(w, "OK")
	}
}

func (h *handler) version(w http.ResponseWriter, r *http.Request, _ []string) {
	h.answer(w, r, http.StatusOK)(h.b.VersionJSON(r.Context(), h.id))
}

func (h *handler) info(w http.ResponseWriter, r *http.Request, _ []string) {
	h.answer(w, r, http.StatusOK)(h.b.InfoJSON(r.Context(), h.id))
}

// answer returns a func that writes a JSON body or the error.
func (h *handler) answer(w http.ResponseWriter, r *http.Request, status int) func([]byte, error) {
	return func(body []byte, err error) {
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, status, body)
	}
}

// done writes 204 or the error.
func (h *handler) done(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- containers ---

func (h *handler) listContainers(w http.ResponseWriter, r *http.Request, _ []string) {
	q := r.URL.Query()
	f, err := parseFilters(q.Get("filters"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	h.answer(w, r, http.StatusOK)(h.b.ListContainers(r.Context(), h.id, docker.APIListOptions{
		All: boolParam(q, "all"), Limit: limit, Size: boolParam(q, "size"), Filters: f,
	}))
}

func (h *handler) createContainer(w http.ResponseWriter, r *http.Request, _ []string) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	h.answer(w, r, http.StatusCreated)(h.b.CreateContainer(r.Context(), h.id, r.URL.Query().Get("name"), body))
}

func (h *handler) inspectContainer(w http.ResponseWriter, r *http.Request, a []string) {
	h.answer(w, r, http.StatusOK)(h.b.InspectContainer(r.Context(), h.id, a[0], boolParam(r.URL.Query(), "size")))
}

func (h *handler) containerAction(w http.ResponseWriter, r *http.Request, a []string) {
	ctx, ref, q := r.Context(), a[0], r.URL.Query()
	var err error
	switch a[1] {
	case "start":
		err = h.b.StartContainer(ctx, h.id, ref)
	case "stop":
		err = h.b.StopContainer(ctx, h.id, ref)
	case "restart":
		err = h.b.RestartContainer(ctx, h.id, ref)
	case "kill":
		err = h.b.KillContainer(ctx, h.id, ref, q.Get("signal"))
	case "pause", "unpause":
		err = h.b.PauseContainer(ctx, h.id, ref, a[1] == "pause")
	case "rename":
		err = h.b.RenameContainer(ctx, h.id, ref, q.Get("name"))
	}
	h.done(w, r, err)
}

func (h *handler) removeContainer(w http.ResponseWriter, r *http.Request, a []string) {
	h.done(w, r, h.b.RemoveContainer(r.Context(), h.id, a[0], boolParam(r.URL.Query(), "force")))
}

func (h *handler) waitContainer(w http.ResponseWriter, r *http.Request, a []string) {
	wait, err := h.b.WaitContainer(r.Context(), h.id, a[0], r.URL.Query().Get("condition"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// The headers go at once: clients start the container only once the wait is taken.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fw := newFlusher(w)
	fw.flush()
	body, err := wait()
	if err != nil {
		body, _ = json.Marshal(map[string]any{"StatusCode": -1, "Error": map[string]string{"Message": termsafe.Line(err.Error())}})
	}
	_, _ = fw.Write(append(body, '\n'))
}

// size reads the h and w parameters of a resize.
func size(q url.Values) (int, int, error) {
	hh, err1 := strconv.Atoi(q.Get("h"))
	ww, err2 := strconv.Atoi(q.Get("w"))
	if err1 != nil || err2 != nil {
		return 0, 0, errors.New("invalid terminal size: h and w must be numbers")
	}
	return ww, hh, nil
}

func (h *handler) resizeContainer(w http.ResponseWriter, r *http.Request, a []string) {
	ww, hh, err := size(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	err = h.b.ResizeContainer(r.Context(), h.id, a[0], ww, hh)
	if err == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	h.fail(w, r, err)
}

func (h *handler) topContainer(w http.ResponseWriter, r *http.Request, a []string) {
	h.answer(w, r, http.StatusOK)(h.b.TopContainer(r.Context(), h.id, a[0], r.URL.Query().Get("ps_args")))
}

// streamContentType is the media type of an attach, exec or logs stream.
func streamContentType(tty bool) string {
	if tty {
		return "application/vnd.docker.raw-stream"
	}
	return "application/vnd.docker.multiplexed-stream"
}

func (h *handler) containerLogs(w http.ResponseWriter, r *http.Request, a []string) {
	q := r.URL.Query()
	body, tty, err := h.b.ContainerLogs(r.Context(), h.id, a[0], docker.APILogOptions{
		Stdout: boolParam(q, "stdout"), Stderr: boolParam(q, "stderr"), Follow: boolParam(q, "follow"),
		Timestamps: boolParam(q, "timestamps"), Details: boolParam(q, "details"),
		Since: q.Get("since"), Until: q.Get("until"), Tail: q.Get("tail"),
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", streamContentType(tty))
	w.WriteHeader(http.StatusOK)
	fw := newFlusher(w)
	fw.flush()
	_, _ = io.Copy(fw, body)
}

func (h *handler) containerStats(w http.ResponseWriter, r *http.Request, a []string) {
	q := r.URL.Query()
	stream := q.Get("stream") == "" || boolParam(q, "stream")
	body, err := h.b.ContainerStats(r.Context(), h.id, a[0], stream, boolParam(q, "one-shot"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fw := newFlusher(w)
	fw.flush()
	_, _ = io.Copy(fw, body)
}

// --- archive (docker cp) ---

const statHeader = "X-Docker-Container-Path-Stat"

func (h *handler) statPath(w http.ResponseWriter, r *http.Request, a []string) {
	st, err := h.b.StatPath(r.Context(), h.id, a[0], r.URL.Query().Get("path"))
	if err != nil {
		// A HEAD answer has no body: the status and a header say it.
		w.Header().Set("X-Docker-Error", termsafe.Line(err.Error()))
		w.WriteHeader(statusOf(err))
		return
	}
	w.Header().Set(statHeader, st)
	w.WriteHeader(http.StatusOK)
}

func (h *handler) getArchive(w http.ResponseWriter, r *http.Request, a []string) {
	body, st, err := h.b.GetArchive(r.Context(), h.id, a[0], r.URL.Query().Get("path"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer body.Close()
	w.Header().Set(statHeader, st)
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, body)
}

func (h *handler) putArchive(w http.ResponseWriter, r *http.Request, a []string) {
	q := r.URL.Query()
	err := h.b.PutArchive(r.Context(), h.id, a[0], q.Get("path"), boolParam(q, "noOverwriteDirNonDir"), boolParam(q, "copyUIDGID"), r.Body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// --- exec ---

func (h *handler) createExec(w http.ResponseWriter, r *http.Request, a []string) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	h.answer(w, r, http.StatusCreated)(h.b.CreateExec(r.Context(), h.id, a[0], body))
}

func (h *handler) startExec(w http.ResponseWriter, r *http.Request, a []string) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	st, err := h.b.StartExec(r.Context(), h.id, a[0], body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if st == nil { // detached
		w.WriteHeader(http.StatusOK)
		return
	}
	h.hijack(w, r, st)
}

func (h *handler) resizeExec(w http.ResponseWriter, r *http.Request, a []string) {
	ww, hh, err := size(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := h.b.ResizeExec(r.Context(), h.id, a[0], ww, hh); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (h *handler) inspectExec(w http.ResponseWriter, r *http.Request, a []string) {
	h.answer(w, r, http.StatusOK)(h.b.InspectExec(r.Context(), h.id, a[0]))
}

func (h *handler) attachContainer(w http.ResponseWriter, r *http.Request, a []string) {
	q := r.URL.Query()
	st, err := h.b.AttachContainer(r.Context(), h.id, a[0], docker.APIAttachOptions{
		Stream: boolParam(q, "stream"), Stdin: boolParam(q, "stdin"), Stdout: boolParam(q, "stdout"),
		Stderr: boolParam(q, "stderr"), Logs: boolParam(q, "logs"), DetachKeys: q.Get("detachKeys"),
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.hijack(w, r, st)
}

// --- images ---

func (h *handler) listImages(w http.ResponseWriter, r *http.Request, _ []string) {
	q := r.URL.Query()
	f, err := parseFilters(q.Get("filters"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if ref := q.Get("filter"); ref != "" {
		f["reference"] = append(f["reference"], ref)
	}
	h.answer(w, r, http.StatusOK)(h.b.ListImages(r.Context(), h.id, boolParam(q, "all"), f))
}

func (h *handler) inspectImage(w http.ResponseWriter, r *http.Request, a []string) {
	h.answer(w, r, http.StatusOK)(h.b.InspectImage(r.Context(), h.id, a[0]))
}

func (h *handler) imageHistory(w http.ResponseWriter, r *http.Request, a []string) {
	h.answer(w, r, http.StatusOK)(h.b.ImageHistory(r.Context(), h.id, a[0]))
}

func (h *handler) pullImage(w http.ResponseWriter, r *http.Request, _ []string) {
	q := r.URL.Query()
	if q.Get("fromSrc") != "" {
		writeError(w, http.StatusForbidden, "import is not available through this server's Docker API: pull an image or build one")
		return
	}
	ref := q.Get("fromImage")
	if tag := q.Get("tag"); tag != "" && !strings.Contains(ref, "@") {
		if strings.HasPrefix(tag, "sha256:") {
			ref += "@" + tag
		} else if !hasTag(ref) {
			ref += ":" + tag
		}
	}
	ms := &messageStream{h: h, w: w, r: r, fw: newFlusher(w)}
	ms.end(h.b.PullImage(r.Context(), h.id, ref, ms.emit))
}

// hasTag reports whether an image reference ends in a tag.
func hasTag(ref string) bool {
	i := strings.LastIndexByte(ref, ':')
	return i > strings.LastIndexByte(ref, '/')
}

func (h *handler) tagImage(w http.ResponseWriter, r *http.Request, a []string) {
	q := r.URL.Query()
	if err := h.b.TagImage(r.Context(), h.id, a[0], q.Get("repo"), q.Get("tag")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (h *handler) pushImage(w http.ResponseWriter, r *http.Request, a []string) {
	ms := &messageStream{h: h, w: w, r: r, fw: newFlusher(w)}
	ms.end(h.b.PushImage(r.Context(), h.id, a[0], r.URL.Query().Get("tag"), r.Header.Get("X-Registry-Auth"), ms.emit))
}

func (h *handler) removeImage(w http.ResponseWriter, r *http.Request, a []string) {
	h.answer(w, r, http.StatusOK)(h.b.RemoveImage(r.Context(), h.id, a[0], boolParam(r.URL.Query(), "force")))
}

func (h *handler) build(w http.ResponseWriter, r *http.Request, _ []string) {
	ms := &messageStream{h: h, w: w, r: r, fw: newFlusher(w)}
	ms.end(h.b.Build(r.Context(), h.id, r.URL.Query(), r.Body, ms.emit))
}

// --- volumes ---

func (h *handler) listVolumes(w http.ResponseWriter, r *http.Request, _ []string) {
	h.answer(w, r, http.StatusOK)(h.b.ListVolumes(r.Context(), h.id))
}

func (h *handler) createVolume(w http.ResponseWriter, r *http.Request, _ []string) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	h.answer(w, r, http.StatusCreated)(h.b.CreateVolume(r.Context(), h.id, body))
}

func (h *handler) inspectVolume(w http.ResponseWriter, r *http.Request, a []string) {
	h.answer(w, r, http.StatusOK)(h.b.InspectVolume(r.Context(), h.id, a[0]))
}

func (h *handler) removeVolume(w http.ResponseWriter, r *http.Request, a []string) {
	h.done(w, r, h.b.RemoveVolume(r.Context(), h.id, a[0], boolParam(r.URL.Query(), "force")))
}

// --- events ---

func (h *handler) events(w http.ResponseWriter, r *http.Request, _ []string) {
	q := r.URL.Query()
	f, err := parseFilters(q.Get("filters"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	until, ok := docker.ParseEventTime(q.Get("until"))
	if !ok {
		writeError(w, http.StatusBadRequest, "invalid until")
		return
	}
	evs, stop, err := h.b.Events(r.Context(), h.id, f, until)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer stop()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fw := newFlusher(w)
	fw.flush()
	for js := range evs {
		if _, err := fw.Write(append(js, '\n')); err != nil {
			return
		}
	}
}

// --- networks ---

func (h *handler) listNetworks(w http.ResponseWriter, r *http.Request, _ []string) {
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	h.answer(w, r, http.StatusOK)(h.b.ListNetworks(r.Context(), h.id, f))
}

func (h *handler) inspectNetwork(w http.ResponseWriter, r *http.Request, a []string) {
	h.answer(w, r, http.StatusOK)(h.b.InspectNetwork(r.Context(), h.id, a[0]))
}

func (h *handler) createNetwork(w http.ResponseWriter, r *http.Request, _ []string) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	h.answer(w, r, http.StatusCreated)(h.b.CreateNetwork(r.Context(), h.id, body))
}

func (h *handler) removeNetwork(w http.ResponseWriter, r *http.Request, a []string) {
	h.done(w, r, h.b.RemoveNetwork(r.Context(), h.id, a[0]))
}

func (h *handler) connectNetwork(w http.ResponseWriter, r *http.Request, a []string) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if a[1] == "connect" {
		err = h.b.ConnectNetwork(r.Context(), h.id, a[0], body)
	} else {
		err = h.b.DisconnectNetwork(r.Context(), h.id, a[0], body)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// --- plugins: none ---

func (h *handler) listPlugins(w http.ResponseWriter, _ *http.Request, _ []string) {
	writeJSON(w, http.StatusOK, []byte("[]"))
}

func (h *handler) inspectPlugin(w http.ResponseWriter, _ *http.Request, a []string) {
	writeError(w, http.StatusNotFound, "plugin "+termsafe.Line(a[0])+" not found")
}
