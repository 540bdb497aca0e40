// Graph rewrites done at load: residual adds folded into convolutions.
#ifndef PAKD_SRC_RUNTIME_FUSION_H_
#define PAKD_SRC_RUNTIME_FUSION_H_

#include <vector>

#include "runtime/model-file.h"

namespace pakd::runtime {

// The graph's ops with each residual add (two distinct inputs of the output's
// shape, no or ReLU activation) folded into a convolution that produces one of
// its inputs: a convolution without activation whose output only the add
// reads, run after the other input's producer. The convolution then writes
// the add's output, takes the other input as inputs[1] and the add's
// activation (Session epilogues: act(conv * scale + bias + residual)). One
// pass over the output less per residual block; ResNet-20's blocks fuse into
// their second 3x3 convolution, or into the 1x1 shortcut convolution run after
// it. *fused[i] tells whether op i of the result carries a residual.
std::vector<OpDesc> fuse_residual_adds(const Graph& graph, std::vector<bool>* fused);

}  // namespace pakd::runtime

#endif  // PAKD_SRC_RUNTIME_FUSION_H_
