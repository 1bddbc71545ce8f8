// prednet2::error_unit: CUDA kernels (registered for the CUDA dispatch key; the schema is in error_unit.cpp).
//
// Layout of the work: one block per (b, c) row at a time (grid-stride over rows, block-stride over the H*W pixels of
// the row), so a row's partial loss sum is reduced inside one block and written once: no atomics, and the loss is
// deterministic (fixed block size, fixed reduction tree). A second, small kernel reduces the C partial sums of
// each sample. Everything runs on the current stream. The per-element math is error_unit.h, shared with the CPU.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "error_unit.h"

namespace prednet2 {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

// Sum of v over the block; the result is valid in thread 0. Ends with a barrier so it can be called again.
template <typename acc_t>
__device__ acc_t block_sum(acc_t v) {
  __shared__ acc_t warp_sums[kThreads / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? warp_sums[lane] : acc_t(0);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  }
  __syncthreads();
  return v;
}

// sum_i w[b, i] (H*W without a weight); valid in thread 0.
template <typename scalar_t, typename acc_t>
__device__ acc_t sample_weight_sum(const scalar_t* __restrict__ w, int64_t b, int64_t HW) {
  if (w == nullptr) return static_cast<acc_t>(HW);
  acc_t s = 0;
  for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) s += static_cast<acc_t>(w[b * HW + i]);
  return block_sum(s);
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const scalar_t* __restrict__ p, const scalar_t* __restrict__ t, const scalar_t* __restrict__ w,
                   scalar_t* __restrict__ E, acc_t* __restrict__ row_sum, int64_t rows, int64_t C, int64_t HW) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t b = row / C, c = row % C;
    const scalar_t* pr = p + row * HW;
    const scalar_t* tr = t + row * HW;
    const scalar_t* wb = w == nullptr ? nullptr : w + b * HW;
    scalar_t* e_pos = E + (b * 2 * C + c) * HW;  // E[b, c]
    scalar_t* e_neg = e_pos + C * HW;            // E[b, C + c]
    acc_t sum = 0;
    for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
      acc_t pos, neg;
      error_unit_forward_elem<acc_t>(static_cast<acc_t>(pr[i]), static_cast<acc_t>(tr[i]), pos, neg);
      e_pos[i] = static_cast<scalar_t>(pos);
      e_neg[i] = static_cast<scalar_t>(neg);
      sum += wb == nullptr ? pos + neg : (pos + neg) * static_cast<acc_t>(wb[i]);
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) row_sum[row] = sum;
  }
}

// loss[b] = sum_c row_sum[b, c] / (2C sum_i w[b, i]), 0 when that denominator is 0.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads) finalize_loss_kernel(const scalar_t* __restrict__ w,
                                                                 const acc_t* __restrict__ row_sum,
                                                                 acc_t* __restrict__ loss, int64_t B, int64_t C,
                                                                 int64_t HW) {
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    const acc_t wsum = sample_weight_sum<scalar_t, acc_t>(w, b, HW);
    acc_t num = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) num += row_sum[b * C + c];
    num = block_sum(num);
    if (threadIdx.x == 0) {
      const acc_t inv = error_unit_inv_denom<acc_t>(wsum, C);
      loss[b] = inv == acc_t(0) ? acc_t(0) : num * inv;
    }
  }
}

// scale[b] = grad_loss[b] / (2C sum_i w[b, i]) (0 when that denominator is 0).
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    loss_scale_kernel(const scalar_t* __restrict__ w, const acc_t* __restrict__ grad_loss, acc_t* __restrict__ scale,
                      int64_t B, int64_t C, int64_t HW) {
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    const acc_t wsum = sample_weight_sum<scalar_t, acc_t>(w, b, HW);
    if (threadIdx.x == 0) scale[b] = grad_loss[b] * error_unit_inv_denom<acc_t>(wsum, C);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const scalar_t* __restrict__ p, const scalar_t* __restrict__ t, const scalar_t* __restrict__ w,
                    const scalar_t* __restrict__ grad_E, const acc_t* __restrict__ scale,
                    scalar_t* __restrict__ grad_p, scalar_t* __restrict__ grad_t, int64_t rows, int64_t C,
                    int64_t HW) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t b = row / C, c = row % C;
    const acc_t s = scale[b];
    const scalar_t* g_pos = grad_E == nullptr ? nullptr : grad_E + (b * 2 * C + c) * HW;
    for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
      const int64_t k = row * HW + i;
      const acc_t g_loss_w = w == nullptr ? s : s * static_cast<acc_t>(w[b * HW + i]);
      const acc_t gp = g_pos == nullptr ? acc_t(0) : static_cast<acc_t>(g_pos[i]);
      const acc_t gn = g_pos == nullptr ? acc_t(0) : static_cast<acc_t>(g_pos[C * HW + i]);
      const acc_t g = error_unit_backward_elem<acc_t>(static_cast<acc_t>(p[k]), static_cast<acc_t>(t[k]), gp, gn,
                                                      g_loss_w);
      grad_p[k] = static_cast<scalar_t>(-g);
      if (grad_t != nullptr) grad_t[k] = static_cast<scalar_t>(g);
    }
  }
}

inline unsigned int blocks_for(int64_t n) { return static_cast<unsigned int>(std::min<int64_t>(n, kMaxBlocks)); }

std::tuple<at::Tensor, at::Tensor> error_unit_cuda(const at::Tensor& pred_in, const at::Tensor& target_in,
                                                   const std::optional<at::Tensor>& weight_in) {
  check_error_unit_inputs("prednet2::error_unit", pred_in, target_in, weight_in);
  const c10::cuda::CUDAGuard guard(pred_in.device());
  const at::Tensor pred = pred_in.contiguous();
  const at::Tensor target = target_in.contiguous();
  const at::Tensor weight = weight_in.has_value() ? weight_in->contiguous() : at::Tensor();
  const int64_t B = pred.size(0), C = pred.size(1), HW = pred.size(2) * pred.size(3);
  const auto acc = error_unit_acc_dtype(pred.scalar_type());

  at::Tensor E = at::empty({B, 2 * C, pred.size(2), pred.size(3)}, pred.options());
  at::Tensor loss = at::empty({B}, pred.options().dtype(acc));
  at::Tensor row_sum = at::empty({B * C}, pred.options().dtype(acc));
  if (B == 0) return {E, loss};
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "error_unit_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* w = weight.defined() ? weight.const_data_ptr<scalar_t>() : nullptr;
    if (B * C > 0) {
      forward_kernel<scalar_t, acc_t><<<blocks_for(B * C), kThreads, 0, stream>>>(
          pred.const_data_ptr<scalar_t>(), target.const_data_ptr<scalar_t>(), w, E.mutable_data_ptr<scalar_t>(),
          row_sum.mutable_data_ptr<acc_t>(), B * C, C, HW);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    finalize_loss_kernel<scalar_t, acc_t><<<blocks_for(B), kThreads, 0, stream>>>(
        w, row_sum.const_data_ptr<acc_t>(), loss.mutable_data_ptr<acc_t>(), B, C, HW);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {E, loss};
}

std::tuple<at::Tensor, at::Tensor> error_unit_backward_cuda(const std::optional<at::Tensor>& grad_E_in,
                                                            const at::Tensor& grad_loss_in, const at::Tensor& pred_in,
                                                            const at::Tensor& target_in,
                                                            const std::optional<at::Tensor>& weight_in,
                                                            bool need_grad_target) {
  check_error_unit_inputs("prednet2::error_unit_backward", pred_in, target_in, weight_in);
  check_error_unit_backward_inputs(grad_E_in, grad_loss_in, pred_in);
  const c10::cuda::CUDAGuard guard(pred_in.device());
  const at::Tensor pred = pred_in.contiguous();
  const at::Tensor target = target_in.contiguous();
  const at::Tensor weight = weight_in.has_value() ? weight_in->contiguous() : at::Tensor();
  const at::Tensor grad_E = grad_E_in.has_value() ? grad_E_in->to(pred.scalar_type()).contiguous() : at::Tensor();
  const auto acc = error_unit_acc_dtype(pred.scalar_type());
  const at::Tensor grad_loss = grad_loss_in.to(acc).contiguous();
  const int64_t B = pred.size(0), C = pred.size(1), HW = pred.size(2) * pred.size(3);

  at::Tensor grad_pred = at::empty_like(pred);
  at::Tensor grad_target = need_grad_target ? at::empty_like(pred) : at::empty({0}, pred.options());
  if (B == 0 || C == 0 || HW == 0) return {grad_pred, grad_target};
  at::Tensor scale = at::empty({B}, pred.options().dtype(acc));
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "error_unit_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* w = weight.defined() ? weight.const_data_ptr<scalar_t>() : nullptr;
    loss_scale_kernel<scalar_t, acc_t><<<blocks_for(B), kThreads, 0, stream>>>(
        w, grad_loss.const_data_ptr<acc_t>(), scale.mutable_data_ptr<acc_t>(), B, C, HW);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    backward_kernel<scalar_t, acc_t><<<blocks_for(B * C), kThreads, 0, stream>>>(
        pred.const_data_ptr<scalar_t>(), target.const_data_ptr<scalar_t>(), w,
        grad_E.defined() ? grad_E.const_data_ptr<scalar_t>() : nullptr, scale.const_data_ptr<acc_t>(),
        grad_pred.mutable_data_ptr<scalar_t>(), need_grad_target ? grad_target.mutable_data_ptr<scalar_t>() : nullptr,
        B * C, C, HW);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_pred, grad_target};
}

}  // namespace

TORCH_LIBRARY_IMPL(prednet2, CUDA, m) {
  m.impl("error_unit", &error_unit_cuda);
  m.impl("error_unit_backward", &error_unit_backward_cuda);
}

}  // namespace prednet2
