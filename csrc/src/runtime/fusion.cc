#include "runtime/fusion.h"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>

namespace pakd::runtime {

std::vector<OpDesc> fuse_residual_adds(const Graph& graph, std::vector<bool>* fused) {
  const std::size_t n_values = graph.shapes.size();
  const std::size_t none = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> producer(n_values, none), readers(n_values, 0);
  for (std::size_t i = 0; i < graph.ops.size(); ++i) {
    producer[graph.ops[i].output] = i;
    for (std::uint32_t v : graph.ops[i].inputs) ++readers[v];
  }
  std::vector<OpDesc> ops = graph.ops;
  std::vector<bool> drop(ops.size(), false);
  fused->assign(ops.size(), false);
  for (std::size_t a = 0; a < ops.size(); ++a) {
    const OpDesc& add = ops[a];
    if (add.type != OpType::kAdd || add.inputs.size() != 2 || add.inputs[0] == add.inputs[1] ||
        (add.act != Act::kNone && add.act != Act::kRelu)) {
      continue;
    }
    const std::size_t out_numel = shape_numel(graph.shapes[add.output]);
    if (shape_numel(graph.shapes[add.inputs[0]]) != out_numel ||
        shape_numel(graph.shapes[add.inputs[1]]) != out_numel) {
      continue;
    }
    for (std::size_t k = 0; k < 2; ++k) {
      const std::uint32_t v = add.inputs[k], r = add.inputs[1 - k];
      const std::size_t p = producer[v];
      if (p == none || p >= a || drop[p] || (*fused)[p]) continue;
      OpDesc& conv = ops[p];
      if (conv.type != OpType::kConv2d || conv.act != Act::kNone || conv.inputs.size() != 1 || readers[v] != 1 ||
          v == graph.output || graph.shapes[v] != graph.shapes[add.output]) {
        continue;
      }
      // the residual must be ready when the convolution runs (the graph input, or produced before it)
      if (r != graph.input && (producer[r] == none || producer[r] >= p)) continue;
      conv.output = add.output;
      conv.act = add.act;
      conv.inputs.push_back(r);
      (*fused)[p] = true;
      drop[a] = true;
      break;
    }
  }
  std::vector<OpDesc> out;
  std::vector<bool> out_fused;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (drop[i]) continue;
    out.push_back(std::move(ops[i]));
    out_fused.push_back((*fused)[i]);
  }
  *fused = std::move(out_fused);
  return out;
}

}  // namespace pakd::runtime
