// OpenCV 4.6's ONNX importer takes Gather only with one index. The project's export
// (training/export/depthwise_repeat.py) writes each channel-multiplying depthwise conv as
// Gather(x, axis=1, indices 0,0,..,1,1,..) -> Conv(group = C*m): the rewrite below undoes exactly that
// (Conv(x, group = C), the same weights, the same numbers) on the file's bytes, with a minimal reader
// and writer of protobuf's wire format, so no protobuf library or ONNX schema is needed.
#pragma once

#include <string>

namespace bgswap {

// The ONNX model serialised in `model` with every such Gather -> Conv pair folded back into one grouped
// Conv; `folded` gets how many. Anything else in the file is kept byte for byte. Throws std::runtime_error
// on bytes that are not a protobuf message.
std::string fold_repeated_depthwise(const std::string& model, int* folded = nullptr);

}  // namespace bgswap
