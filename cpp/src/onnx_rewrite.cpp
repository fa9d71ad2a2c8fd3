#include "onnx_rewrite.hpp"

#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <vector>

namespace bgswap {

namespace {

// One field of a protobuf message: its number, wire type and payload (a varint's value, or the bytes of
// a fixed32/fixed64/length-delimited field).
struct Field {
    uint32_t number = 0;
    uint32_t wire = 0;   // 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32
    uint64_t varint = 0;
    std::string bytes;
};

uint64_t read_varint(const std::string& buf, size_t& pos) {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (pos >= buf.size()) throw std::runtime_error("truncated varint");
        const auto byte = static_cast<uint8_t>(buf[pos++]);
        value |= static_cast<uint64_t>(byte & 0x7F) << shift;
        if (!(byte & 0x80)) return value;
    }
    throw std::runtime_error("varint too long");
}

void write_varint(std::string& out, uint64_t value) {
    while (value >= 0x80) {
        out.push_back(static_cast<char>((value & 0x7F) | 0x80));
        value >>= 7;
    }
    out.push_back(static_cast<char>(value));
}

std::vector<Field> parse(const std::string& buf) {
    std::vector<Field> fields;
    size_t pos = 0;
    while (pos < buf.size()) {
        Field f;
        const uint64_t key = read_varint(buf, pos);
        f.number = static_cast<uint32_t>(key >> 3);
        f.wire = static_cast<uint32_t>(key & 7);
        size_t len = 0;
        switch (f.wire) {
            case 0: f.varint = read_varint(buf, pos); break;
            case 1: len = 8; break;
            case 2: len = static_cast<size_t>(read_varint(buf, pos)); break;
            case 5: len = 4; break;
            default: throw std::runtime_error("unsupported protobuf wire type " + std::to_string(f.wire));
        }
        if (f.wire != 0) {
            if (len > buf.size() - pos) throw std::runtime_error("truncated protobuf field");
            f.bytes = buf.substr(pos, len);
            pos += len;
        }
        fields.push_back(std::move(f));
    }
    return fields;
}

std::string serialize(const std::vector<Field>& fields) {
    std::string out;
    for (const Field& f : fields) {
        write_varint(out, (static_cast<uint64_t>(f.number) << 3) | f.wire);
        if (f.wire == 0) {
            write_varint(out, f.varint);
        } else {
            if (f.wire == 2) write_varint(out, f.bytes.size());
            out += f.bytes;
        }
    }
    return out;
}

const Field* first(const std::vector<Field>& fields, uint32_t number) {
    for (const Field& f : fields)
        if (f.number == number) return &f;
    return nullptr;
}

std::vector<std::string> strings(const std::vector<Field>& fields, uint32_t number) {
    std::vector<std::string> out;
    for (const Field& f : fields)
        if (f.number == number && f.wire == 2) out.push_back(f.bytes);
    return out;
}

// ONNX field numbers (onnx.proto3).
constexpr uint32_t MODEL_GRAPH = 7;
constexpr uint32_t GRAPH_NODE = 1, GRAPH_INITIALIZER = 5;
constexpr uint32_t NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5;
constexpr uint32_t ATTR_NAME = 1, ATTR_I = 3;
constexpr uint32_t TENSOR_DATA_TYPE = 2, TENSOR_INT32_DATA = 5, TENSOR_INT64_DATA = 7,
                   TENSOR_NAME = 8, TENSOR_RAW_DATA = 9;
constexpr uint64_t TYPE_INT32 = 6, TYPE_INT64 = 7;

// An integer attribute of a node (the field list of a NodeProto), if it has one.
std::optional<int64_t> int_attribute(const std::vector<Field>& node, const std::string& name) {
    for (const Field& f : node) {
        if (f.number != NODE_ATTRIBUTE || f.wire != 2) continue;
        const auto attr = parse(f.bytes);
        const Field* n = first(attr, ATTR_NAME);
        const Field* i = first(attr, ATTR_I);
        if (n && n->bytes == name && i && i->wire == 0) return static_cast<int64_t>(i->varint);
    }
    return std::nullopt;
}

void set_int_attribute(std::vector<Field>& node, const std::string& name, int64_t value) {
    for (Field& f : node) {
        if (f.number != NODE_ATTRIBUTE || f.wire != 2) continue;
        auto attr = parse(f.bytes);
        const Field* n = first(attr, ATTR_NAME);
        if (!n || n->bytes != name) continue;
        for (Field& a : attr)
            if (a.number == ATTR_I) a.varint = static_cast<uint64_t>(value);
        f.bytes = serialize(attr);
        return;
    }
}

void set_string(std::vector<Field>& fields, uint32_t number, size_t index, const std::string& value) {
    size_t seen = 0;
    for (Field& f : fields)
        if (f.number == number && f.wire == 2 && seen++ == index) {
            f.bytes = value;
            return;
        }
}

// The values of an integer tensor (the field list of a TensorProto), or nothing for other tensors.
std::optional<std::vector<int64_t>> int_values(const std::vector<Field>& tensor) {
    const Field* type = first(tensor, TENSOR_DATA_TYPE);
    if (!type || (type->varint != TYPE_INT64 && type->varint != TYPE_INT32)) return std::nullopt;
    std::vector<int64_t> values;
    if (const Field* raw = first(tensor, TENSOR_RAW_DATA)) {
        const size_t width = type->varint == TYPE_INT64 ? 8 : 4;   // little-endian, as ONNX stores it
        if (raw->bytes.size() % width) return std::nullopt;
        for (size_t p = 0; p < raw->bytes.size(); p += width) {
            if (width == 8) {
                int64_t v;
                std::memcpy(&v, raw->bytes.data() + p, 8);
                values.push_back(v);
            } else {
                int32_t v;
                std::memcpy(&v, raw->bytes.data() + p, 4);
                values.push_back(v);
            }
        }
        return values;
    }
    const uint32_t number = type->varint == TYPE_INT64 ? TENSOR_INT64_DATA : TENSOR_INT32_DATA;
    for (const Field& f : tensor) {
        if (f.number != number) continue;
        if (f.wire == 0) {
            values.push_back(static_cast<int64_t>(f.varint));
        } else if (f.wire == 2) {   // packed
            size_t pos = 0;
            while (pos < f.bytes.size()) values.push_back(static_cast<int64_t>(read_varint(f.bytes, pos)));
        }
    }
    return values;
}

// C when `index` is 0,..,0, 1,..,1, ..., C-1,..,C-1 with each value m > 1 times in a row, else 0
// (numpy.repeat(numpy.arange(C), m), what the export writes).
int64_t repeated_channels(const std::vector<int64_t>& index) {
    if (index.empty() || index[0] != 0) return 0;
    size_t m = 0;
    while (m < index.size() && index[m] == 0) ++m;
    if (m < 2 || index.size() % m) return 0;
    for (size_t j = 0; j < index.size(); ++j)
        if (index[j] != static_cast<int64_t>(j / m)) return 0;
    return static_cast<int64_t>(index.size() / m);
}

}  // namespace

std::string fold_repeated_depthwise(const std::string& model, int* folded) {
    if (folded) *folded = 0;
    auto top = parse(model);
    Field* graph_field = nullptr;
    for (Field& f : top)
        if (f.number == MODEL_GRAPH && f.wire == 2) graph_field = &f;
    if (!graph_field) return model;
    auto graph = parse(graph_field->bytes);

    struct Index {
        int64_t channels, length;   // C and C * m
    };
    std::map<std::string, Index> repeat_index;   // integer initializers that repeat channels
    for (const Field& f : graph) {
        if (f.number != GRAPH_INITIALIZER || f.wire != 2) continue;
        const auto tensor = parse(f.bytes);
        const Field* name = first(tensor, TENSOR_NAME);
        if (!name) continue;
        if (const auto values = int_values(tensor)) {
            if (const int64_t c = repeated_channels(*values))
                repeat_index[name->bytes] = Index{c, static_cast<int64_t>(values->size())};
        }
    }
    if (repeat_index.empty()) return model;

    // Gather(x, repeat index, axis=1) nodes: their output -> (x, the index, where the node is in the graph).
    struct Repeat {
        std::string input;
        Index index;
        size_t position;
        int uses = 0;
    };
    std::map<std::string, Repeat> repeats;
    std::vector<std::vector<Field>> nodes(graph.size());
    for (size_t k = 0; k < graph.size(); ++k) {
        if (graph[k].number != GRAPH_NODE || graph[k].wire != 2) continue;
        nodes[k] = parse(graph[k].bytes);
        const Field* op = first(nodes[k], NODE_OP_TYPE);
        const auto in = strings(nodes[k], NODE_INPUT);
        const auto out = strings(nodes[k], NODE_OUTPUT);
        if (op && op->bytes == "Gather" && in.size() == 2 && out.size() == 1 && repeat_index.count(in[1]) &&
            int_attribute(nodes[k], "axis").value_or(0) == 1)
            repeats[out[0]] = Repeat{in[0], repeat_index[in[1]], k};
    }
    if (repeats.empty()) return model;
    // Each repeated tensor must feed only Convs as their data input with group = its channel count (pure
    // depthwise convs on it): anything else that reads it keeps the Gather.
    std::map<std::string, std::vector<size_t>> conv_users;
    for (size_t k = 0; k < graph.size(); ++k) {
        if (nodes[k].empty()) continue;
        const Field* op = first(nodes[k], NODE_OP_TYPE);
        const auto in = strings(nodes[k], NODE_INPUT);
        for (size_t i = 0; i < in.size(); ++i) {
            auto it = repeats.find(in[i]);
            if (it == repeats.end()) continue;
            ++it->second.uses;
            const bool depthwise_conv = op && op->bytes == "Conv" && i == 0 && int_attribute(nodes[k], "group");
            if (depthwise_conv) conv_users[in[i]].push_back(k);
        }
    }
    std::vector<bool> drop(graph.size(), false);
    int count = 0;
    for (auto& [name, rep] : repeats) {
        const auto users = conv_users[name];
        if (users.empty() || users.size() != static_cast<size_t>(rep.uses)) continue;
        bool ok = true;
        for (size_t k : users) ok = ok && int_attribute(nodes[k], "group").value_or(0) == rep.index.length;
        if (!ok) continue;
        for (size_t k : users) {
            set_string(nodes[k], NODE_INPUT, 0, rep.input);
            set_int_attribute(nodes[k], "group", rep.index.channels);
            graph[k].bytes = serialize(nodes[k]);
            ++count;
        }
        drop[rep.position] = true;
    }
    if (!count) return model;
    std::vector<Field> kept;
    for (size_t k = 0; k < graph.size(); ++k)
        if (!drop[k]) kept.push_back(std::move(graph[k]));
    graph_field->bytes = serialize(kept);
    if (folded) *folded = count;
    return serialize(top);
}

}  // namespace bgswap
