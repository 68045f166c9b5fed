package node

import (
	"encoding/hex"
	"strings"
	"time"
	"unicode"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// MessageJSON returns a wire message in hashfed's JSON (docs/API.md, "Conventions"), for answers
// that are a message as it is (/v1/status and `hashfed status --json`): every field under its
// proto name, unset ones included (zero, "", false, [] or null), so that the shape does not change
// with the values; integers as JSON numbers (protojson writes 64-bit ones as strings); bytes in
// hex; enum values as their lowercase names without the type's prefix ("member" for ROLE_MEMBER);
// and a field named <name>_unix_ms as <name>, an RFC 3339 time in UTC ("" for 0).
func MessageJSON(m proto.Message) map[string]any {
	return messageJSON(m.ProtoReflect())
}

func messageJSON(m protoreflect.Message) map[string]any {
	fields := m.Descriptor().Fields()
	out := make(map[string]any, fields.Len())
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := string(fd.Name())
		v := m.Get(fd)
		switch {
		case fd.IsList():
			l := v.List()
			arr := make([]any, l.Len())
			for j := range l.Len() {
				arr[j] = valueJSON(fd, l.Get(j))
			}
			out[name] = arr
		case fd.IsMap():
			obj := map[string]any{}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				obj[k.String()] = valueJSON(fd.MapValue(), mv)
				return true
			})
			out[name] = obj
		case fd.Kind() == protoreflect.MessageKind && !m.Has(fd):
			out[name] = nil
		case fd.HasOptionalKeyword() && !m.Has(fd):
			out[name] = nil
		default:
			if base, ok := strings.CutSuffix(name, "_unix_ms"); ok && fd.Kind() == protoreflect.Int64Kind {
				out[base] = ""
				if ms := v.Int(); ms != 0 {
					out[base] = rfc3339(time.UnixMilli(ms))
				}
				continue
			}
			out[name] = valueJSON(fd, v)
		}
	}
	return out
}

func valueJSON(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return v.Bool()
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return v.Int()
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return v.Uint()
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return v.Float()
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BytesKind:
		return hex.EncodeToString(v.Bytes())
	case protoreflect.EnumKind:
		return enumJSON(fd.Enum(), v.Enum())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return messageJSON(v.Message())
	}
	return nil
}

// enumJSON returns an enum value's name without its type's prefix, in lowercase (ROLE_MEMBER of
// Role: "member"), or its number when the value is unknown.
func enumJSON(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) any {
	vd := ed.Values().ByNumber(n)
	if vd == nil {
		return int32(n)
	}
	var prefix strings.Builder
	for i, r := range string(ed.Name()) {
		if i > 0 && unicode.IsUpper(r) {
			prefix.WriteByte('_')
		}
		prefix.WriteRune(unicode.ToUpper(r))
	}
	prefix.WriteByte('_')
	return strings.ToLower(strings.TrimPrefix(string(vd.Name()), prefix.String()))
}
