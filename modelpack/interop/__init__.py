"""Translators between other tools' files and modelpack: ``mxnet`` (MXNet's files), ``torch``
(state_dict files without torch; modules both ways), ``onnx`` (ONNX files both ways),
``safetensors`` (safetensors files without the safetensors package),
``convert`` (``modelpack.convert``: any of them, told apart by their bytes), and
``imported`` (an imported graph as a model: a ``Sequential`` or a ``GraphBlock``, and safe
names for its pieces, for all).

Each translator reads another tool's format with modelpack's own strict readers (never with
that tool, never by executing anything from the file) and produces modelpack's objects:
arrays, and models made of registered layers and graphs of registered ops. Data flows one
way: a translator may import the core, but nothing in the core imports a translator (the
public verbs reach one only by a lazy import when a file asks for it).
"""
