package server

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/apiv1"
)

// importKeys checks each record as keyctl import checks a line of a file
// (keystore.DecodeImportRecord), and hands the good ones to the store,
// which stores them in one transaction and checks the times by its clock.
// A record with a secret (key) is fine on the wire; it is hashed here, and
// neither the body nor an error message ever holds it.
func (s *Server) importKeys(c *call) (result, error) {
	var req apiv1.ImportRequest
	if err := decodeBody(c.body, &req, false); err != nil {
		return result{}, err
	}
	if req.Keys == nil {
		return result{}, keystore.Errorf(keystore.EINVALID, `the request body needs "keys": a list of import records`)
	}
	if len(req.Keys) > apiv1.MaxImportRecords {
		return result{}, keystore.Errorf(keystore.EINVALID,
			"%d import records in one request, at most %d: send them in several requests", len(req.Keys), apiv1.MaxImportRecords)
	}
	reply := apiv1.ImportReply{Errors: []keystore.ImportFailed{}}
	keys := make([]keystore.ImportKey, 0, len(req.Keys))
	positions := make([]int, 0, len(req.Keys)) // of keys[i] in req.Keys, from 1
	for i, raw := range req.Keys {
		k, err := keystore.DecodeImportRecord(raw)
		if err != nil {
			reply.Failed++
			reply.Errors = append(reply.Errors, keystore.ImportFailed{Line: i + 1, Message: err.Error()})
			continue
		}
		if err := s.mayManage(c, k.Params.Environment, fmt.Sprintf("import a live key (record %d)", i+1)); err != nil {
			return result{}, err // all or nothing: not a failure of one record
		}
		keys = append(keys, *k)
		positions = append(positions, i+1)
	}
	res, err := s.store.Import(c.ctx, keys)
	if err != nil {
		return result{}, err
	}
	reply.Imported, reply.Skipped, reply.Failed = res.Imported, res.Skipped, reply.Failed+res.Failed
	for _, e := range res.Errors {
		if e.Line >= 1 && e.Line <= len(positions) {
			e.Line = positions[e.Line-1]
		}
		reply.Errors = append(reply.Errors, e)
	}
	slices.SortStableFunc(reply.Errors, func(a, b keystore.ImportFailed) int { return a.Line - b.Line })
	return dataReply(http.StatusOK, reply)
}
