"""Export: fold a trained model (`fold`, into the modules of `runtime`, costed by `cost`), write ONNX in
fp32/fp16 (`onnx_graph`) or int8 (`quantize`), check parity (`parity`, with ONNX Runtime through
`ort_session`), build TensorRT engines (`trt_engine`) and run them (`trt_runner`), write Triton
repositories (`triton`); `pipeline.export_checkpoint` runs it all (docs/architecture.md, Exported models)."""

__all__: list[str] = []
