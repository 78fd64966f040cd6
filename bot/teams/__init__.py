"""Microsoft Teams surface. The only package that imports the Bot Framework SDK."""

from bot.teams.bot import EscalationBot, TeamsIntegration, create_teams_bot
from bot.teams.channels import ChannelDirectory, JsonFileChannelDirectory
from bot.teams.notifier import TeamsDigestPublisher, TeamsNotifier
from bot.teams.settings import TeamsSettings

__all__ = [
    "ChannelDirectory",
    "EscalationBot",
    "JsonFileChannelDirectory",
    "TeamsDigestPublisher",
    "TeamsIntegration",
    "TeamsNotifier",
    "TeamsSettings",
    "create_teams_bot",
]
