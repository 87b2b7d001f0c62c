"""The network file format as pydantic models; the JSON Schema is generated from them."""

from .agent import AgentLimits, AgentSpec
from .base import Duration, Spec, parse_duration
from .function import FunctionSpec
from .mcp import McpServerSpec, SseServer, StdioServer, StreamableHttpServer, WsServer
from .model import ModelSpec
from .network import FragmentSpec, Limits, NetworkSpec
from .params import JsonSchema
from .router import LlmRouterSpec, RouterSpec, RuleSpec
from .tools import ApprovalSpec, EventTool, HttpTool, NetworkTool, StateTool, WaitTool
from .trigger import CronTrigger, EventTrigger

__all__ = [
    "AgentLimits",
    "AgentSpec",
    "ApprovalSpec",
    "CronTrigger",
    "Duration",
    "EventTool",
    "EventTrigger",
    "FragmentSpec",
    "FunctionSpec",
    "HttpTool",
    "JsonSchema",
    "Limits",
    "LlmRouterSpec",
    "McpServerSpec",
    "ModelSpec",
    "NetworkSpec",
    "NetworkTool",
    "RouterSpec",
    "RuleSpec",
    "Spec",
    "SseServer",
    "StateTool",
    "StdioServer",
    "StreamableHttpServer",
    "WaitTool",
    "WsServer",
    "parse_duration",
]
