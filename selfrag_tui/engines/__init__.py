"""Generation engines behind one small interface (SELFRAG_SPEC section 7).

Heavy libraries (torch, vllm, llama_cpp, httpx) are imported inside each engine, never here.
"""
