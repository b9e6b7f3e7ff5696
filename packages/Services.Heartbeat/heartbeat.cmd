@echo off
:loop
echo heartbeat >> C:\Data\heartbeat.log
timeout /t 60 >nul
goto loop
