"""Export: fold a trained model (fold), write ONNX in fp32/fp16 (onnx) or int8 (quantize), check parity
(parity), build TensorRT engines (tensorrt) and Triton repositories (triton); `pipeline` runs it all."""
